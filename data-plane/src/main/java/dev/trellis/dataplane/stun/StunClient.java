package dev.trellis.dataplane.stun;

import dev.trellis.proto.stun.StunMessage;
import dev.trellis.proto.stun.StunMessage.MessageClass;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.Inet6Address;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

/**
 * A STUN Binding client (RFC 8489): asks a server which address and port its request came from (the
 * server-reflexive address).
 *
 * <p>Requests are retransmitted over UDP as RFC 8489 section 6.2.1 describes: the first after an
 * RTO of 500 ms, each next after twice the previous interval (0, 0.5, 1.5, 3.5, 7.5 ... s), at most
 * 7 transmissions, all within the caller's overall timeout. Only a response carrying the request's
 * 96-bit transaction id counts; anything else arriving on the socket is skipped.
 *
 * <p>For a socket that also carries other traffic (the agent's WireGuard port), {@link Transaction}
 * is the pure part: it makes the request bytes and recognises the matching response, leaving
 * sending, receiving and demultiplexing ({@link StunMessage#looksLikeStun}) to the caller.
 */
public final class StunClient {
  /** RFC 8489's recommended initial retransmission timeout. */
  public static final Duration INITIAL_RTO = Duration.ofMillis(500);

  /** RFC 8489's Rc: transmissions per transaction. */
  public static final int MAX_TRANSMISSIONS = 7;

  private StunClient() {}

  /** A STUN server answered with an error response. */
  public static final class StunErrorException extends IOException {
    private final int code;

    public StunErrorException(int code, String reason) {
      super("STUN error " + code + (reason.isEmpty() ? "" : " " + reason));
      this.code = code;
    }

    public int code() {
      return code;
    }
  }

  /** What one received datagram means for a {@link Transaction}. */
  public sealed interface Outcome {
    /** The success response: the reflexive address. */
    record Mapped(InetSocketAddress address) implements Outcome {}

    /** An error response to this transaction. */
    record Error(int code, String reason) implements Outcome {}
  }

  /** One Binding transaction: the request to send and the recogniser for its response. No I/O. */
  public static final class Transaction {
    private final byte[] id;
    private final byte[] request;

    public Transaction() {
      StunMessage message = StunMessage.bindingRequest();
      this.id = message.transactionId();
      this.request = message.encode(true);
    }

    /** The transaction id (12 bytes). */
    public byte[] id() {
      return id.clone();
    }

    /** The Binding request, with FINGERPRINT: send the same bytes on every retransmission. */
    public byte[] request() {
      return request.clone();
    }

    /**
     * Null unless {@code data[offset, offset + length)} is a well-formed response to this
     * transaction; then its reflexive address or its error. A success response without a usable
     * address, or with a malformed one, also gives null (it cannot be acted on).
     */
    public Outcome accept(byte[] data, int offset, int length) {
      StunMessage m = StunMessage.tryParse(data, offset, length);
      if (m == null
          || m.method() != StunMessage.METHOD_BINDING
          || !m.hasTransactionId(id)
          || m.cookie() != StunMessage.MAGIC_COOKIE) {
        return null;
      }
      try {
        if (m.messageClass() == MessageClass.SUCCESS_RESPONSE) {
          InetSocketAddress mapped = m.reflexiveAddress();
          return mapped == null ? null : new Outcome.Mapped(mapped);
        }
        if (m.messageClass() == MessageClass.ERROR_RESPONSE) {
          StunMessage.ErrorCode error = m.errorCode();
          return error == null
              ? new Outcome.Error(400, "error response without ERROR-CODE")
              : new Outcome.Error(error.code(), error.reason());
        }
      } catch (StunMessage.StunException e) {
        return null;
      }
      return null;
    }

    public Outcome accept(ByteBuffer datagram) {
      ByteBuffer b = datagram.duplicate();
      byte[] bytes = new byte[b.remaining()];
      b.get(bytes);
      return accept(bytes, 0, bytes.length);
    }
  }

  /** The retransmission schedule: when, in ms after the first send, each transmission goes out. */
  static List<Long> schedule(Duration rto) {
    long[] at = new long[MAX_TRANSMISSIONS];
    long interval = rto.toMillis();
    for (int i = 1; i < MAX_TRANSMISSIONS; i++) {
      at[i] = at[i - 1] + interval;
      interval *= 2;
    }
    return Arrays.stream(at).boxed().toList();
  }

  /**
   * Sends a Binding request to {@code server} from a fresh ephemeral UDP socket and returns the
   * reflexive address. Throws {@link SocketTimeoutException} when no answer came within {@code
   * timeout}, {@link StunErrorException} for an error response.
   */
  public static InetSocketAddress bindingRequest(InetSocketAddress server, Duration timeout)
      throws IOException {
    StandardProtocolFamily family =
        server.getAddress() instanceof Inet6Address
            ? StandardProtocolFamily.INET6
            : StandardProtocolFamily.INET;
    try (DatagramChannel channel = DatagramChannel.open(family)) {
      channel.bind(null);
      return bindingRequest(channel, server, timeout);
    }
  }

  /**
   * As {@link #bindingRequest(InetSocketAddress, Duration)} on the caller's channel (bound;
   * blocking or not). Datagrams that are not the answer are consumed and skipped, so do not use
   * this while another thread reads the channel: use {@link Transaction} there.
   */
  public static InetSocketAddress bindingRequest(
      DatagramChannel channel, InetSocketAddress server, Duration timeout) throws IOException {
    return bindingRequest(channel, server, timeout, INITIAL_RTO);
  }

  static InetSocketAddress bindingRequest(
      DatagramChannel channel, InetSocketAddress server, Duration timeout, Duration rto)
      throws IOException {
    if (server.isUnresolved()) {
      throw new IOException("cannot resolve STUN server " + server.getHostString());
    }
    Transaction tx = new Transaction();
    byte[] request = tx.request();
    long start = System.nanoTime();
    long deadline = start + timeout.toNanos();
    List<Long> sends = schedule(rto);
    byte[] buffer = new byte[2048];
    try (Receiver receiver =
        channel.isBlocking() ? new BlockingReceiver(channel) : new SelectorReceiver(channel)) {
      for (int i = 0; i < sends.size(); i++) {
        long sendAt = start + Duration.ofMillis(sends.get(i)).toNanos();
        if (sendAt >= deadline) {
          break;
        }
        channel.send(ByteBuffer.wrap(request), server);
        // Listen until the next transmission is due; after the last one, until the deadline.
        long until =
            i + 1 < sends.size()
                ? Math.min(deadline, start + Duration.ofMillis(sends.get(i + 1)).toNanos())
                : deadline;
        long now;
        while ((now = System.nanoTime()) < until) {
          int n = receiver.receive(buffer, Math.max(1, (until - now) / 1_000_000));
          if (n < 0) {
            continue;
          }
          Outcome outcome = tx.accept(buffer, 0, n);
          if (outcome instanceof Outcome.Mapped(InetSocketAddress address)) {
            return address;
          }
          if (outcome instanceof Outcome.Error(int code, String reason)) {
            throw new StunErrorException(code, reason);
          }
        }
      }
    }
    throw new SocketTimeoutException(
        "no STUN Binding response from " + server + " within " + timeout.toMillis() + " ms");
  }

  /** Receives one datagram within a time limit: its length, or -1 when nothing came. */
  private interface Receiver extends AutoCloseable {
    int receive(byte[] buffer, long timeoutMillis) throws IOException;

    @Override
    void close() throws IOException;
  }

  /** A blocking channel: its socket adaptor honours SO_TIMEOUT. */
  private static final class BlockingReceiver implements Receiver {
    private final DatagramSocket socket;
    private final int oldTimeout;

    BlockingReceiver(DatagramChannel channel) throws IOException {
      this.socket = channel.socket();
      this.oldTimeout = socket.getSoTimeout();
    }

    @Override
    public int receive(byte[] buffer, long timeoutMillis) throws IOException {
      socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, timeoutMillis));
      DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
      try {
        socket.receive(packet);
        return packet.getLength();
      } catch (SocketTimeoutException e) {
        return -1;
      }
    }

    @Override
    public void close() throws IOException {
      socket.setSoTimeout(oldTimeout);
    }
  }

  /** A non-blocking channel: a private selector (a channel may be registered with several). */
  private static final class SelectorReceiver implements Receiver {
    private final DatagramChannel channel;
    private final Selector selector;
    private final ByteBuffer wrap = ByteBuffer.allocate(2048);

    SelectorReceiver(DatagramChannel channel) throws IOException {
      this.channel = channel;
      this.selector = Selector.open();
      channel.register(selector, SelectionKey.OP_READ);
    }

    @Override
    public int receive(byte[] buffer, long timeoutMillis) throws IOException {
      wrap.clear();
      if (channel.receive(wrap) == null) {
        selector.select(timeoutMillis);
        selector.selectedKeys().clear();
        if (channel.receive(wrap) == null) {
          return -1;
        }
      }
      int n = Math.min(wrap.position(), buffer.length);
      System.arraycopy(wrap.array(), 0, buffer, 0, n);
      return n;
    }

    @Override
    public void close() throws IOException {
      selector.close();
    }
  }
}
