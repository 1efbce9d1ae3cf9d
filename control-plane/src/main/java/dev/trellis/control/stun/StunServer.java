package dev.trellis.control.stun;

import dev.trellis.proto.stun.StunMessage;
import dev.trellis.proto.stun.StunMessage.Attribute;
import dev.trellis.proto.stun.StunMessage.MessageClass;
import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * A STUN Binding server (RFC 8489) on one UDP port: it tells each client the address and port its
 * request came from, so nodes behind NAT learn their public endpoint.
 *
 * <p>Answers Binding requests with a success response carrying XOR-MAPPED-ADDRESS, SOFTWARE and
 * FINGERPRINT. RFC 3489 clients (no magic cookie) get an RFC 3489 answer instead: the cookie field
 * echoed, MAPPED-ADDRESS, SOURCE-ADDRESS and CHANGED-ADDRESS (both this server's own address: it
 * has only one; with a wildcard bind, the wildcard), and neither SOFTWARE nor FINGERPRINT. A
 * request with a comprehension-required attribute the server does not understand gets 420 with
 * UNKNOWN-ATTRIBUTES; so does a CHANGE-REQUEST asking for another IP or port (RFC 5780 section 7.2:
 * a server without an alternate address answers it that way), and RESPONSE-ADDRESS (never honoured:
 * it would make the server a reflector). Everything else that arrives (responses, indications,
 * other methods, malformed or non-STUN datagrams) is dropped and counted. A response is never
 * larger than the request plus the two addresses, the SOFTWARE and FINGERPRINT attributes (at most
 * 88 bytes for an attribute-less request), so the server is no useful amplifier.
 *
 * <p>Bound to a wildcard address (0.0.0.0 or ::), the socket is dual-stack where the host has IPv6,
 * answering IPv4 and IPv6 clients on the one port.
 *
 * <p>Served by {@code trellis server} and {@code trellis relay} (nodes only ask, with {@code
 * dev.trellis.dataplane.stun.StunClient}). Threads: one daemon thread per server owns the socket
 * and does all receiving and answering; the counters are atomics any thread may read, and {@link
 * #close()} may be called from any thread.
 */
public final class StunServer implements AutoCloseable {
  public static final int DEFAULT_PORT = 3478;
  public static final String SOFTWARE = "trellis";

  private static final int ERROR_UNKNOWN_ATTRIBUTE = 420;

  /**
   * Comprehension-required attributes a Binding request may carry that this server understands, in
   * the sense that it may ignore them: credentials it has no use for (it does not authenticate),
   * ICE's PRIORITY/USE-CANDIDATE, and address attributes that mean nothing in a request.
   */
  private static final Set<Integer> UNDERSTOOD =
      Set.of(
          StunMessage.MAPPED_ADDRESS,
          StunMessage.XOR_MAPPED_ADDRESS,
          StunMessage.USERNAME,
          StunMessage.MESSAGE_INTEGRITY,
          StunMessage.MESSAGE_INTEGRITY_SHA256,
          StunMessage.REALM,
          StunMessage.NONCE,
          StunMessage.USERHASH,
          StunMessage.ERROR_CODE,
          StunMessage.UNKNOWN_ATTRIBUTES,
          StunMessage.PRIORITY,
          StunMessage.USE_CANDIDATE,
          StunMessage.SOURCE_ADDRESS,
          StunMessage.CHANGED_ADDRESS);

  /** What the server has done so far. */
  public record Counters(
      long received,
      long bindingResponses,
      long classicBindingResponses,
      long errorResponses,
      long dropped) {}

  /** The outcome of one datagram: the bytes to send back, or null to drop it. */
  record Reply(byte[] bytes, Kind kind) {
    enum Kind {
      SUCCESS,
      CLASSIC_SUCCESS,
      ERROR,
      DROP
    }
  }

  private final DatagramChannel channel;
  private final InetSocketAddress local;
  private final Consumer<InetSocketAddress> onAnswer;
  private final Thread thread;
  private final AtomicLong received = new AtomicLong();
  private final AtomicLong successes = new AtomicLong();
  private final AtomicLong classicSuccesses = new AtomicLong();
  private final AtomicLong errors = new AtomicLong();
  private final AtomicLong dropped = new AtomicLong();
  private volatile boolean closed;

  private StunServer(DatagramChannel channel, Consumer<InetSocketAddress> onAnswer)
      throws IOException {
    this.channel = channel;
    this.local = (InetSocketAddress) channel.getLocalAddress();
    this.onAnswer = onAnswer;
    this.thread =
        Thread.ofPlatform().daemon().name("trellis-stun-" + local.getPort()).unstarted(this::serve);
  }

  /** Binds {@code bind} (port 0 picks a free one) and starts answering. */
  public static StunServer start(InetSocketAddress bind) throws IOException {
    return start(bind, client -> {});
  }

  /**
   * As {@link #start(InetSocketAddress)}; {@code onAnswer} sees each client answered a success
   * response.
   */
  public static StunServer start(InetSocketAddress bind, Consumer<InetSocketAddress> onAnswer)
      throws IOException {
    InetAddress address =
        bind.isUnresolved() ? InetAddress.getByName(bind.getHostString()) : bind.getAddress();
    DatagramChannel channel;
    SocketAddress target;
    if (address.isAnyLocalAddress()) {
      // Default family: IPv6 with IPV6_V6ONLY off where the host has IPv6, else IPv4.
      channel = DatagramChannel.open();
      target = new InetSocketAddress(bind.getPort());
    } else {
      channel =
          DatagramChannel.open(
              address instanceof Inet6Address
                  ? StandardProtocolFamily.INET6
                  : StandardProtocolFamily.INET);
      target = new InetSocketAddress(address, bind.getPort());
    }
    try {
      channel.bind(target);
      StunServer server = new StunServer(channel, onAnswer);
      server.thread.start();
      return server;
    } catch (IOException | RuntimeException e) {
      channel.close();
      throw new IOException(
          "cannot bind STUN on UDP "
              + bind.getHostString()
              + ":"
              + bind.getPort()
              + ": "
              + e.getMessage(),
          e);
    }
  }

  public int port() {
    return local.getPort();
  }

  public InetSocketAddress localAddress() {
    return local;
  }

  public Counters counters() {
    return new Counters(
        received.get(), successes.get(), classicSuccesses.get(), errors.get(), dropped.get());
  }

  @Override
  public void close() {
    closed = true;
    try {
      channel.close();
    } catch (IOException ignored) {
      // closing anyway
    }
    if (Thread.currentThread() != thread) {
      try {
        thread.join(5_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void serve() {
    ByteBuffer in = ByteBuffer.allocate(2048);
    byte[] data = in.array();
    while (!closed) {
      InetSocketAddress from;
      try {
        in.clear();
        from = (InetSocketAddress) channel.receive(in);
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        if (closed) {
          return;
        }
        continue; // e.g. an ICMP error surfaced on the socket; keep serving
      }
      if (from == null) {
        continue;
      }
      received.incrementAndGet();
      InetSocketAddress client =
          new InetSocketAddress(StunMessage.canonical(from.getAddress()), from.getPort());
      Reply reply = respond(data, in.position(), client, local);
      switch (reply.kind()) {
        case SUCCESS -> successes.incrementAndGet();
        case CLASSIC_SUCCESS -> classicSuccesses.incrementAndGet();
        case ERROR -> errors.incrementAndGet();
        case DROP -> dropped.incrementAndGet();
      }
      if (reply.bytes() == null) {
        continue;
      }
      try {
        channel.send(ByteBuffer.wrap(reply.bytes()), from);
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        // unreachable client, no route: nothing to do for a datagram service
      }
      if (reply.kind() == Reply.Kind.SUCCESS || reply.kind() == Reply.Kind.CLASSIC_SUCCESS) {
        try {
          onAnswer.accept(client);
        } catch (RuntimeException ignored) {
          // an observer's failure must not stop the server
        }
      }
    }
  }

  /**
   * The answer to one datagram of {@code length} bytes from {@code client}, received on {@code
   * local}. Pure: no I/O, no state.
   */
  static Reply respond(byte[] data, int length, InetSocketAddress client, InetSocketAddress local) {
    StunMessage request = StunMessage.tryParse(data, 0, length);
    if (request == null || !request.isBindingRequest()) {
      return new Reply(null, Reply.Kind.DROP);
    }
    byte[] tid = request.transactionId();
    List<Integer> unknown = new ArrayList<>();
    for (Attribute a : request.attributes()) {
      if (!a.comprehensionRequired()
          || UNDERSTOOD.contains(a.type())
          || unknown.contains(a.type())) {
        continue;
      }
      if (a.type() == StunMessage.CHANGE_REQUEST
          && a.value().length == 4
          && (a.value()[3] & 0x06) == 0) {
        continue; // asks for nothing to change: an ordinary Binding request
      }
      unknown.add(a.type());
    }
    if (!unknown.isEmpty()) {
      List<Attribute> attrs;
      if (request.isClassic()) {
        // RFC 3489 section 11.2.9: an odd-length list repeats an attribute to fill 4 bytes.
        if (unknown.size() % 2 != 0) {
          unknown.add(unknown.getLast());
        }
        attrs =
            List.of(
                Attribute.errorCode(ERROR_UNKNOWN_ATTRIBUTE, "Unknown Attribute"),
                Attribute.unknownAttributes(unknown));
      } else {
        attrs =
            List.of(
                Attribute.errorCode(ERROR_UNKNOWN_ATTRIBUTE, "Unknown Attribute"),
                Attribute.unknownAttributes(unknown),
                Attribute.software(SOFTWARE));
      }
      StunMessage error =
          new StunMessage(
              StunMessage.METHOD_BINDING,
              MessageClass.ERROR_RESPONSE,
              request.cookie(),
              tid,
              attrs);
      return new Reply(error.encode(!request.isClassic()), Reply.Kind.ERROR);
    }
    if (request.isClassic()) {
      // RFC 3489 section 8.1: MAPPED-ADDRESS, SOURCE-ADDRESS and CHANGED-ADDRESS are mandatory. No
      // SOFTWARE: RFC 3489 clients (Debian's stun) expect its string padded to 4 and complain
      // otherwise.
      InetSocketAddress self = selfAddress(local, client);
      StunMessage response =
          new StunMessage(
              StunMessage.METHOD_BINDING,
              MessageClass.SUCCESS_RESPONSE,
              request.cookie(),
              tid,
              List.of(
                  Attribute.mappedAddress(client),
                  Attribute.plainAddress(StunMessage.SOURCE_ADDRESS, self),
                  Attribute.plainAddress(StunMessage.CHANGED_ADDRESS, self)));
      return new Reply(response.encode(false), Reply.Kind.CLASSIC_SUCCESS);
    }
    StunMessage response =
        new StunMessage(
            StunMessage.METHOD_BINDING,
            MessageClass.SUCCESS_RESPONSE,
            tid,
            List.of(Attribute.xorMappedAddress(client, tid), Attribute.software(SOFTWARE)));
    return new Reply(response.encode(true), Reply.Kind.SUCCESS);
  }

  /**
   * This server's address as the client sees it; with a wildcard bind, the wildcard of the client's
   * family.
   */
  private static InetSocketAddress selfAddress(InetSocketAddress local, InetSocketAddress client) {
    InetAddress address = StunMessage.canonical(local.getAddress());
    if (address.isAnyLocalAddress() || !address.getClass().equals(client.getAddress().getClass())) {
      try {
        address = InetAddress.getByAddress(new byte[client.getAddress().getAddress().length]);
      } catch (UnknownHostException e) {
        throw new AssertionError(e);
      }
    }
    return new InetSocketAddress(address, local.getPort());
  }
}
