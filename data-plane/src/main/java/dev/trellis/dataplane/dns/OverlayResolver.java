package dev.trellis.dataplane.dns;

import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Opcode;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;

/**
 * The node's resolver on UDP {@code ADDRESS:53} (wire format: dnsjava). Overlay names are answered
 * from the current {@link OverlayNames}; every other question is forwarded unchanged to the host's
 * own name servers and the answer relayed back (split DNS). Only this host may ask: a question from
 * an address that is not one of the host's own is dropped (no open resolver), as are malformed and
 * oversized ones; each kind is counted.
 *
 * <p>Threads: one reader thread owns the socket; each forwarded question runs on a virtual thread
 * with a socket of its own. The names and upstream list are read through volatile suppliers.
 */
public final class OverlayResolver implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(OverlayResolver.class);

  /** Larger UDP questions are dropped: real ones are a few dozen bytes (RFC 1035: 512). */
  static final int MAX_QUERY = 512;

  static final int MAX_RESPONSE = 4096;
  static final int UPSTREAM_TIMEOUT_MS = 2000;

  /** What the resolver has done since it started. */
  public static final class Counters {
    public final LongAdder answered = new LongAdder();
    public final LongAdder forwarded = new LongAdder();
    public final LongAdder malformed = new LongAdder();
    public final LongAdder oversized = new LongAdder();
    public final LongAdder foreign = new LongAdder();
    public final LongAdder upstreamFailed = new LongAdder();
  }

  private final DatagramSocket socket;
  private final Supplier<OverlayNames> names;
  private final Supplier<List<InetSocketAddress>> upstream;
  private final Counters counters = new Counters();
  private final Thread reader;

  private static final long LOCAL_RELIST_NANOS = 1_000_000_000L;

  /** This host's addresses as last listed; read and written by the reader thread only. */
  private Set<InetAddress> localAddresses = Set.of();

  private long localListedAt = Long.MIN_VALUE / 2;

  private OverlayResolver(
      DatagramSocket socket,
      Supplier<OverlayNames> names,
      Supplier<List<InetSocketAddress>> upstream) {
    this.socket = socket;
    this.names = names;
    this.upstream = upstream;
    this.reader = Thread.ofPlatform().daemon().name("trellis-dns").start(this::serve);
  }

  /** Serves on {@code address}:{@code port} (the address must be on one of the host's links). */
  public static OverlayResolver start(
      InetSocketAddress address,
      Supplier<OverlayNames> names,
      Supplier<List<InetSocketAddress>> upstream)
      throws SocketException {
    return new OverlayResolver(new DatagramSocket(address), names, upstream);
  }

  public Counters counters() {
    return counters;
  }

  public InetSocketAddress address() {
    return (InetSocketAddress) socket.getLocalSocketAddress();
  }

  private void serve() {
    byte[] buffer = new byte[MAX_QUERY + 1];
    while (!socket.isClosed()) {
      DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
      try {
        socket.receive(packet);
      } catch (IOException e) {
        if (!socket.isClosed()) LOG.warn("resolver socket failed: {}", e.getMessage());
        return;
      }
      try {
        handle(packet);
      } catch (RuntimeException e) {
        counters.malformed.increment();
        LOG.debug("dropped a question that broke the resolver: {}", e.toString());
      }
    }
  }

  private void handle(DatagramPacket packet) {
    InetSocketAddress from = (InetSocketAddress) packet.getSocketAddress();
    if (!local(from.getAddress())) {
      counters.foreign.increment();
      return;
    }
    if (packet.getLength() > MAX_QUERY) {
      counters.oversized.increment();
      return;
    }
    byte[] wire = java.util.Arrays.copyOf(packet.getData(), packet.getLength());
    Message query;
    try {
      query = new Message(wire);
    } catch (IOException e) {
      counters.malformed.increment();
      return;
    }
    Record question = query.getQuestion();
    if (query.getHeader().getFlag(Flags.QR)
        || query.getHeader().getOpcode() != Opcode.QUERY
        || question == null
        || query.getHeader().getCount(Section.QUESTION) != 1) {
      counters.malformed.increment();
      return;
    }
    OverlayNames current = names.get();
    OverlayNames.Answer answer =
        current == null
            ? new OverlayNames.Answer(OverlayNames.Kind.NOT_OURS, List.of())
            : current.answer(question.getName(), question.getType());
    if (answer.kind() == OverlayNames.Kind.NOT_OURS) {
      forward(wire, query, from);
      return;
    }
    Message response = reply(query);
    response.getHeader().setFlag(Flags.AA);
    if (answer.kind() == OverlayNames.Kind.NO_SUCH_NAME) {
      response.getHeader().setRcode(Rcode.NXDOMAIN);
    }
    for (Record r : answer.records()) response.addRecord(r, Section.ANSWER);
    counters.answered.increment();
    send(response.toWire(limit(query)), from);
  }

  /** Relays the question to the host's name servers in turn; SERVFAIL if none answers. */
  private void forward(byte[] wire, Message query, InetSocketAddress from) {
    List<InetSocketAddress> servers = upstream.get();
    Thread.ofVirtual()
        .start(
            () -> {
              byte[] in = new byte[MAX_RESPONSE];
              for (InetSocketAddress server : servers) {
                try (DatagramSocket s = new DatagramSocket()) {
                  s.setSoTimeout(UPSTREAM_TIMEOUT_MS);
                  s.send(new DatagramPacket(wire, wire.length, server));
                  DatagramPacket answer = new DatagramPacket(in, in.length);
                  s.receive(answer);
                  counters.forwarded.increment();
                  send(java.util.Arrays.copyOf(in, answer.getLength()), from);
                  return;
                } catch (SocketTimeoutException e) {
                  LOG.debug("name server {} did not answer", server);
                } catch (IOException e) {
                  LOG.debug("name server {}: {}", server, e.getMessage());
                }
              }
              counters.upstreamFailed.increment();
              Message failed = reply(query);
              failed.getHeader().setRcode(Rcode.SERVFAIL);
              send(failed.toWire(limit(query)), from);
            });
  }

  private static Message reply(Message query) {
    Message response = new Message(query.getHeader().getID());
    response.getHeader().setFlag(Flags.QR);
    if (query.getHeader().getFlag(Flags.RD)) response.getHeader().setFlag(Flags.RD);
    response.getHeader().setFlag(Flags.RA);
    response.addRecord(query.getQuestion(), Section.QUESTION);
    return response;
  }

  /** What fits the asker: 512 bytes, or what its EDNS record offers (truncated beyond). */
  private static int limit(Message query) {
    OPTRecord opt = query.getOPT();
    return opt == null ? 512 : Math.max(512, Math.min(MAX_RESPONSE, opt.getPayloadSize()));
  }

  private void send(byte[] bytes, InetSocketAddress to) {
    try {
      socket.send(new DatagramPacket(bytes, bytes.length, to));
    } catch (IOException e) {
      LOG.debug("cannot answer {}: {}", to, e.getMessage());
    }
  }

  /**
   * Whether {@code a} is one of this host's own addresses (loopback included). The host's addresses
   * are listed again on a miss, at most once a second, so a flood from elsewhere costs no more.
   */
  private boolean local(InetAddress a) {
    if (a.isLoopbackAddress() || a.isAnyLocalAddress() || localAddresses.contains(a)) return true;
    long now = System.nanoTime();
    if (now - localListedAt < LOCAL_RELIST_NANOS) return false;
    localListedAt = now;
    Set<InetAddress> found = new HashSet<>();
    try {
      for (NetworkInterface i :
          java.util.Collections.list(NetworkInterface.getNetworkInterfaces())) {
        found.addAll(java.util.Collections.list(i.getInetAddresses()));
      }
    } catch (SocketException e) {
      LOG.debug("cannot list this host's addresses: {}", e.getMessage());
    }
    localAddresses = Set.copyOf(found);
    return localAddresses.contains(a);
  }

  @Override
  public void close() {
    socket.close();
    try {
      reader.join(2000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
