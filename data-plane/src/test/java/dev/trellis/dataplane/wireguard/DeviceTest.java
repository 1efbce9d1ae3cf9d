package dev.trellis.dataplane.wireguard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.trellis.dataplane.uapi.UapiProtocol;
import dev.trellis.dataplane.uapi.UapiProtocol.UapiException;
import dev.trellis.proto.wireguard.Cookie;
import dev.trellis.proto.wireguard.Curve25519;
import dev.trellis.proto.wireguard.Handshake;
import dev.trellis.proto.wireguard.Keypair;
import dev.trellis.proto.wireguard.Message;
import dev.trellis.proto.wireguard.Tai64n;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Two (or one) devices in this JVM, each with an in-memory tunnel, speaking WireGuard over UDP on
 * the loopback interface, configured through the same UAPI code path `wg set` uses.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class DeviceTest {
  private static final HexFormat HEX = HexFormat.of();
  private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
  private static final String IP_A = "100.64.0.1";
  private static final String IP_B = "100.64.0.2";
  private static final long AWAIT_SECONDS = 10;

  private final List<AutoCloseable> closeables = new ArrayList<>();
  private final Random random = new Random(1234);

  @AfterEach
  void closeAll() {
    for (int i = closeables.size() - 1; i >= 0; i--) {
      try {
        closeables.get(i).close();
      } catch (Exception e) {
        // best effort
      }
    }
  }

  // ---- fixtures ----------------------------------------------------------------------------

  private record Node(
      Device device, MemoryTunnel tunnel, byte[] privateKey, byte[] publicKey, String ip) {
    String publicHex() {
      return HEX.formatHex(publicKey);
    }

    int port() {
      return device.listenPort();
    }

    DeviceCounters counters() {
      return device.counters();
    }
  }

  private Node node(String name, String ip, Timing timing) throws Exception {
    MemoryTunnel tunnel = new MemoryTunnel(name);
    Device device = new Device(tunnel, timing);
    closeables.add(device);
    device.start();
    byte[] privateKey = Curve25519.generatePrivateKey();
    UapiProtocol.set(device, List.of("private_key=" + HEX.formatHex(privateKey)));
    assertNotEquals(0, device.listenPort());
    return new Node(device, tunnel, privateKey, Curve25519.publicKey(privateKey), ip);
  }

  /** Configures {@code to} as a peer of {@code on}, reached at 127.0.0.1:{@code port}. */
  private static void addPeer(Node on, Node to, int port, String... extra) throws UapiException {
    List<String> lines =
        new ArrayList<>(
            List.of(
                "public_key=" + to.publicHex(),
                "allowed_ip=" + to.ip() + "/32",
                "endpoint=127.0.0.1:" + port));
    lines.addAll(List.of(extra));
    UapiProtocol.set(on.device(), lines);
  }

  private Node[] pair(Timing timing) throws Exception {
    Node a = node("memA", IP_A, timing);
    Node b = node("memB", IP_B, timing);
    addPeer(a, b, b.port());
    addPeer(b, a, a.port());
    return new Node[] {a, b};
  }

  private DatagramSocket socket() throws SocketException {
    DatagramSocket s = new DatagramSocket(new InetSocketAddress(LOOPBACK, 0));
    closeables.add(s);
    return s;
  }

  /** A minimal IPv4/UDP packet with correct length fields and a recognisable payload. */
  private static byte[] ipv4(String src, String dst, int seq, int payloadLength)
      throws IOException {
    byte[] p = new byte[20 + 8 + payloadLength];
    p[0] = 0x45;
    p[2] = (byte) (p.length >>> 8);
    p[3] = (byte) p.length;
    p[8] = 64;
    p[9] = 17;
    System.arraycopy(InetAddress.getByName(src).getAddress(), 0, p, 12, 4);
    System.arraycopy(InetAddress.getByName(dst).getAddress(), 0, p, 16, 4);
    p[20] = 0x30;
    p[21] = 0x39; // source port 12345
    p[22] = 0x1f;
    p[23] = (byte) 0x90; // destination port 8080
    p[24] = (byte) ((8 + payloadLength) >>> 8);
    p[25] = (byte) (8 + payloadLength);
    for (int i = 0; i < payloadLength; i++) {
      p[28 + i] = (byte) (seq * 31 + i);
    }
    return p;
  }

  /**
   * Injects {@code packet} into {@code from}'s tunnel and expects it byte-identical out of {@code
   * to}'s.
   */
  private static void sendAndExpect(Node from, Node to, byte[] packet) throws InterruptedException {
    from.tunnel().inject(packet);
    byte[] got = to.tunnel().awaitWritten(AWAIT_SECONDS, TimeUnit.SECONDS);
    assertNotNull(
        got,
        "packet from "
            + from.ip()
            + " never arrived at "
            + to.ip()
            + "; counters from: "
            + from.device().dropCounters()
            + " to: "
            + to.device().dropCounters());
    assertArrayEquals(packet, got);
  }

  private static void await(BooleanSupplier condition, String what) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(AWAIT_SECONDS);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() - deadline > 0) {
        fail("timed out waiting for " + what);
      }
      Thread.sleep(5);
    }
  }

  private static void awaitCount(LongAdder counter, long atLeast, String what, Device device)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(AWAIT_SECONDS);
    while (counter.sum() < atLeast) {
      if (System.nanoTime() - deadline > 0) {
        fail(
            "timed out waiting for "
                + what
                + " >= "
                + atLeast
                + ", is "
                + counter.sum()
                + "; "
                + device.dropCounters());
      }
      Thread.sleep(5);
    }
  }

  /** The key=value lines of one peer's section in the UAPI get output. */
  private static Map<String, String> peerInfo(Node on, Node peer) {
    Map<String, String> out = new HashMap<>();
    boolean inPeer = false;
    for (String line : UapiProtocol.get(on.device()).split("\n")) {
      int eq = line.indexOf('=');
      String key = line.substring(0, eq);
      String value = line.substring(eq + 1);
      if (key.equals("public_key")) {
        inPeer = value.equals(peer.publicHex());
      } else if (inPeer) {
        out.put(key, value);
      }
    }
    return out;
  }

  private static long stat(Node on, Node peer, String key) {
    String v = peerInfo(on, peer).get(key);
    assertNotNull(v, key + " missing for peer");
    return Long.parseLong(v);
  }

  private static long handshakeNanos(Node on, Node peer) {
    return stat(on, peer, "last_handshake_time_sec") * 1_000_000_000L
        + stat(on, peer, "last_handshake_time_nsec");
  }

  private static void assertPassesBothWays(Node a, Node b, int seq) throws Exception {
    sendAndExpect(a, b, ipv4(a.ip(), b.ip(), seq, 100));
    sendAndExpect(b, a, ipv4(b.ip(), a.ip(), seq + 1, 100));
  }

  private static void send(DatagramSocket s, byte[] data, int port) throws IOException {
    s.send(new DatagramPacket(data, data.length, LOOPBACK, port));
  }

  private static byte[] receive(DatagramSocket s, int timeoutMillis) throws IOException {
    s.setSoTimeout(timeoutMillis);
    byte[] buf = new byte[65536];
    DatagramPacket p = new DatagramPacket(buf, buf.length);
    try {
      s.receive(p);
    } catch (SocketTimeoutException e) {
      return null;
    }
    return Arrays.copyOf(buf, p.getLength());
  }

  /** Relays datagrams between two devices through a socket the test owns, keeping copies. */
  private final class Forwarder implements AutoCloseable, Runnable {
    final DatagramSocket socket;
    final int portA;
    final int portB;
    final BlockingQueue<byte[]> aToB = new LinkedBlockingQueue<>();
    final BlockingQueue<byte[]> bToA = new LinkedBlockingQueue<>();
    private final Thread thread;

    Forwarder(int portA, int portB) throws SocketException {
      this.socket = socket();
      this.portA = portA;
      this.portB = portB;
      this.thread = Thread.ofPlatform().daemon().name("test-forwarder").start(this);
    }

    int port() {
      return socket.getLocalPort();
    }

    @Override
    public void run() {
      byte[] buf = new byte[65536];
      while (!socket.isClosed()) {
        DatagramPacket p = new DatagramPacket(buf, buf.length);
        try {
          socket.receive(p);
          byte[] data = Arrays.copyOf(buf, p.getLength());
          boolean fromB = p.getPort() == portB;
          (fromB ? bToA : aToB).add(data);
          send(socket, data, fromB ? portA : portB);
        } catch (IOException e) {
          return;
        }
      }
    }

    /** The first captured datagram (of either queue) matching, waiting for one to appear. */
    byte[] find(BlockingQueue<byte[]> queue, Predicate<byte[]> match) throws InterruptedException {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(AWAIT_SECONDS);
      List<byte[]> seen = new ArrayList<>();
      try {
        while (System.nanoTime() - deadline < 0) {
          byte[] d = queue.poll(100, TimeUnit.MILLISECONDS);
          if (d != null) {
            seen.add(d);
            if (match.test(d)) {
              return d;
            }
          }
        }
        return null;
      } finally {
        queue.addAll(seen);
      }
    }

    @Override
    public void close() throws InterruptedException {
      socket.close();
      thread.join(5000);
    }
  }

  private Node[] pairThroughForwarder() throws Exception {
    Node a = node("memA", IP_A, Timing.DEFAULT);
    Node b = node("memB", IP_B, Timing.DEFAULT);
    Forwarder f = new Forwarder(a.port(), b.port());
    closeables.add(f);
    forwarder = f;
    addPeer(a, b, f.port());
    addPeer(b, a, f.port());
    return new Node[] {a, b};
  }

  private Forwarder forwarder;

  private static boolean isDataTransport(byte[] d) {
    return Message.typeOf(d, 0, d.length) == Message.TYPE_TRANSPORT
        && d.length > Message.TRANSPORT_MIN_LENGTH;
  }

  // ---- traffic -----------------------------------------------------------------------------

  @Test
  void packetsCrossBothWaysAndCountersAgree() throws Exception {
    Node[] n = pair(Timing.DEFAULT);
    Node a = n[0];
    Node b = n[1];
    assertEquals(0, stat(a, b, "last_handshake_time_sec"));

    sendAndExpect(a, b, ipv4(IP_A, IP_B, 1, 64));
    sendAndExpect(b, a, ipv4(IP_B, IP_A, 2, 64));
    for (int i = 0; i < 20; i++) {
      // odd sizes exercise padding, which the receiver must strip
      sendAndExpect(a, b, ipv4(IP_A, IP_B, 10 + i, 1 + 37 * i));
      sendAndExpect(b, a, ipv4(IP_B, IP_A, 100 + i, 1 + 53 * i));
    }
    // the largest packet the MTU allows
    sendAndExpect(a, b, ipv4(IP_A, IP_B, 999, 1420 - 28));

    long nowSec = Instant.now().getEpochSecond();
    for (Node[] pair : new Node[][] {{a, b}, {b, a}}) {
      Map<String, String> info = peerInfo(pair[0], pair[1]);
      long hs = Long.parseLong(info.get("last_handshake_time_sec"));
      assertTrue(hs > 0 && Math.abs(hs - nowSec) < 60, "last handshake " + hs);
      assertTrue(Long.parseLong(info.get("tx_bytes")) > 0);
      assertTrue(Long.parseLong(info.get("rx_bytes")) > 0);
      assertEquals("1", info.get("protocol_version"));
      assertEquals(pair[1].ip() + "/32", info.get("allowed_ip"));
    }
    await(
        () ->
            stat(a, b, "tx_bytes") == stat(b, a, "rx_bytes")
                && stat(b, a, "tx_bytes") == stat(a, b, "rx_bytes"),
        "A.tx == B.rx and B.tx == A.rx");
    // 41 data packets of at least 32+16 bytes each went A->B
    assertTrue(stat(a, b, "tx_bytes") > 22 * 48);
    for (Node x : n) {
      DeviceCounters c = x.counters();
      assertEquals(
          0,
          c.decryptFailed.sum()
              + c.replayed.sum()
              + c.badMac.sum()
              + c.malformed.sum()
              + c.disallowedSource.sum()
              + c.handshakeRejected.sum(),
          x.device().dropCounters());
    }
  }

  @Test
  void peersWithoutUdpPathTalkThroughTheRelayThenMoveToDirect() throws Exception {
    Node a = node("relA", IP_A, Timing.DEFAULT);
    Node b = node("relB", IP_B, Timing.DEFAULT);
    // No endpoints: only the relay can carry these peers' packets.
    UapiProtocol.set(
        a.device(), List.of("public_key=" + b.publicHex(), "allowed_ip=" + IP_B + "/32"));
    UapiProtocol.set(
        b.device(), List.of("public_key=" + a.publicHex(), "allowed_ip=" + IP_A + "/32"));
    AtomicLong relayed = new AtomicLong();
    ExecutorService delivery = Executors.newSingleThreadExecutor();
    closeables.add(delivery::shutdownNow);
    Map<String, Device> byKey = Map.of(a.publicHex(), a.device(), b.publicHex(), b.device());
    // An in-process stand-in for the HTTP relay: delivers by destination key on its own thread.
    AtomicBoolean preferRelay = new AtomicBoolean();
    for (Device self : List.of(a.device(), b.device())) {
      self.setTransport(
          new PeerTransport() {
            @Override
            public boolean send(
                byte[] key, InetSocketAddress endpoint, byte[] message, int length) {
              if (endpoint != null && !preferRelay.get()) {
                self.sendUdp(message, length, endpoint);
                return true;
              }
              return reply(key, message, length);
            }

            @Override
            public boolean canReach(byte[] key, InetSocketAddress endpoint) {
              return true;
            }

            @Override
            public boolean reply(byte[] key, byte[] message, int length) {
              relayed.incrementAndGet();
              byte[] copy = Arrays.copyOf(message, length);
              delivery.execute(() -> byKey.get(HEX.formatHex(key)).receive(copy, copy.length));
              return true;
            }
          });
    }

    assertPassesBothWays(a, b, 1);
    assertTrue(relayed.get() >= 4, "handshake and data went through the relay: " + relayed.get());
    assertFalse(
        UapiProtocol.get(a.device()).contains("endpoint="), "a relayed peer has no UDP endpoint");

    // A direct path appears (as path discovery would find it): traffic leaves the relay.
    UapiProtocol.set(
        a.device(), List.of("public_key=" + b.publicHex(), "endpoint=127.0.0.1:" + b.port()));
    UapiProtocol.set(
        b.device(), List.of("public_key=" + a.publicHex(), "endpoint=127.0.0.1:" + a.port()));
    long before = relayed.get();
    assertPassesBothWays(a, b, 3);
    assertEquals(before, relayed.get(), "direct packets must not use the relay");

    // Told to prefer the relay again (the direct path stopped working): back through it.
    preferRelay.set(true);
    assertPassesBothWays(a, b, 5);
    assertTrue(relayed.get() > before);
  }

  /** Records what the device shows it and refuses inbound packets while {@code refuse} is set. */
  private static final class RecordingFilter implements InboundFilter {
    final List<byte[]> inbound = new CopyOnWriteArrayList<>();
    final List<byte[]> outbound = new CopyOnWriteArrayList<>();
    final AtomicBoolean refuse = new AtomicBoolean();

    @Override
    public boolean accept(byte[] packet, int offset, int length) {
      inbound.add(Arrays.copyOfRange(packet, offset, offset + length));
      return !refuse.get();
    }

    @Override
    public void outbound(byte[] packet, int offset, int length) {
      outbound.add(Arrays.copyOfRange(packet, offset, offset + length));
    }
  }

  /**
   * The inbound filter sees every packet routed out and every authenticated packet about to be
   * written in, by UDP and through {@link Device#receive} alike; what it refuses is dropped and
   * counted.
   */
  @Test
  void inboundFilterDecidesOnDirectAndRelayedPackets() throws Exception {
    Node[] n = pair(Timing.DEFAULT);
    Node a = n[0];
    Node b = n[1];
    RecordingFilter filter = new RecordingFilter();
    b.device().setInboundFilter(filter);

    byte[] toB = ipv4(IP_A, IP_B, 1, 50);
    sendAndExpect(a, b, toB);
    byte[] toA = ipv4(IP_B, IP_A, 2, 50);
    sendAndExpect(b, a, toA);
    assertArrayEquals(toB, filter.inbound.getFirst());
    assertArrayEquals(toA, filter.outbound.getFirst());

    filter.refuse.set(true);
    a.tunnel().inject(ipv4(IP_A, IP_B, 3, 50));
    awaitCount(b.counters().filtered, 1, "filtered", b.device());
    assertNull(b.tunnel().pollWritten());

    // A's transport data now reaches B through B's receive(), as from a relay.
    AtomicLong relayed = new AtomicLong();
    a.device()
        .setTransport(
            new PeerTransport() {
              @Override
              public boolean send(
                  byte[] key, InetSocketAddress endpoint, byte[] message, int length) {
                if (Message.typeOf(message, 0, length) == Message.TYPE_TRANSPORT) {
                  relayed.incrementAndGet();
                  b.device().receive(Arrays.copyOf(message, length), length);
                } else {
                  a.device().sendUdp(message, length, endpoint);
                }
                return true;
              }

              @Override
              public boolean canReach(byte[] key, InetSocketAddress endpoint) {
                return true;
              }

              @Override
              public boolean reply(byte[] key, byte[] message, int length) {
                return false;
              }
            });
    a.tunnel().inject(ipv4(IP_A, IP_B, 4, 50));
    awaitCount(b.counters().filtered, 2, "filtered", b.device());
    assertTrue(relayed.get() > 0);
    assertNull(b.tunnel().pollWritten());
    filter.refuse.set(false);
    sendAndExpect(a, b, ipv4(IP_A, IP_B, 5, 50));
    assertEquals(4, filter.inbound.size());

    b.device().setInboundFilter(null);
    filter.refuse.set(true);
    sendAndExpect(a, b, ipv4(IP_A, IP_B, 6, 50));
    assertEquals(4, filter.inbound.size());
  }

  @Test
  void packetWithSourceOutsideSendersAllowedIpsIsDropped() throws Exception {
    Node[] n = pair(Timing.DEFAULT);
    Node a = n[0];
    Node b = n[1];
    assertPassesBothWays(a, b, 1);
    // A routes by destination (B), but B only accepts 100.64.0.1 as a source from A.
    a.tunnel().inject(ipv4("100.64.0.99", IP_B, 5, 40));
    awaitCount(b.counters().disallowedSource, 1, "disallowedSource", b.device());
    // Traffic is in order on one session: a good packet after the spoofed one arrives first.
    sendAndExpect(a, b, ipv4(IP_A, IP_B, 6, 40));
    assertNull(b.tunnel().pollWritten());
    // B does not route an unknown destination at all
    b.tunnel().inject(ipv4(IP_B, "100.64.0.77", 7, 40));
    awaitCount(b.counters().noRoute, 1, "noRoute", b.device());
  }

  @Test
  void replayedTransportDatagramIsDropped() throws Exception {
    Node[] n = pairThroughForwarder();
    Node a = n[0];
    Node b = n[1];
    byte[] packet = ipv4(IP_A, IP_B, 1, 200);
    sendAndExpect(a, b, packet);
    byte[] captured = forwarder.find(forwarder.aToB, DeviceTest::isDataTransport);
    assertNotNull(captured, "no transport datagram captured");
    long rxBefore = stat(b, a, "rx_bytes");

    DatagramSocket attacker = socket();
    for (int i = 0; i < 3; i++) {
      send(attacker, captured, b.port());
    }
    awaitCount(b.counters().replayed, 3, "replayed", b.device());
    assertEquals(rxBefore, stat(b, a, "rx_bytes"), "replays are not counted as received");
    // the replays did not make B roam to the attacker: B's replies still reach A
    sendAndExpect(b, a, ipv4(IP_B, IP_A, 2, 50));
    assertNull(b.tunnel().pollWritten(), "a replayed packet reached the tunnel");
    assertPassesBothWays(a, b, 3);
  }

  @Test
  void malformedAndForgedDatagramsAreCountedAndHarmless() throws Exception {
    Node[] n = pairThroughForwarder();
    Node a = n[0];
    Node b = n[1];
    assertPassesBothWays(a, b, 1);
    byte[] fromB = forwarder.find(forwarder.bToA, DeviceTest::isDataTransport);
    assertNotNull(fromB);
    DeviceCounters c = a.counters();
    DatagramSocket s = socket();
    int port = a.port();

    // random garbage with a type byte that is never valid
    long malformed = c.malformed.sum();
    for (int batch = 0; batch < 5; batch++) {
      for (int i = 0; i < 50; i++) {
        byte[] junk = new byte[1 + random.nextInt(1500)];
        random.nextBytes(junk);
        junk[0] = (byte) (5 + random.nextInt(250));
        send(s, junk, port);
      }
      malformed += 50;
      awaitCount(c.malformed, malformed, "malformed (garbage)", a.device());
    }

    // every truncation (0..147 bytes) of an initiation with valid MACs
    byte[] strangerPrivate = Curve25519.generatePrivateKey();
    Handshake stranger = new Handshake(strangerPrivate, a.publicKey());
    byte[] initiation = stranger.createInitiation(42, Tai64n.now()).encode();
    new Cookie.Generator(a.publicKey()).addMacs(initiation, System.nanoTime());
    for (int len = 0; len < initiation.length; len++) {
      send(s, Arrays.copyOf(initiation, len), port);
      if (len % 40 == 39) {
        awaitCount(c.malformed, malformed + len + 1, "malformed (truncations)", a.device());
      }
    }
    malformed += initiation.length;
    awaitCount(c.malformed, malformed, "malformed (truncations)", a.device());
    // the whole thing authenticates (MAC1) but comes from no configured peer
    long rejected = c.handshakeRejected.sum();
    send(s, initiation, port);
    awaitCount(c.handshakeRejected, rejected + 1, "handshakeRejected (unknown peer)", a.device());

    // wrong types and wrong lengths for a type; zero-length; oversized zeros
    List<byte[]> wrong =
        List.of(
            new byte[0],
            new byte[65000],
            withType(new byte[148], 2),
            withType(new byte[92], 1),
            withType(new byte[63], 3),
            withType(new byte[31], 4),
            withType(new byte[148], 0),
            reserved(withType(new byte[148], 1)));
    for (byte[] w : wrong) {
      send(s, w, port);
    }
    malformed += wrong.size();
    awaitCount(c.malformed, malformed, "malformed (wrong types)", a.device());

    // transport messages naming an unknown receiver index, one of them 65000 bytes
    long unknown = c.unknownIndex.sum();
    byte[] bogus = new byte[64];
    Message.writeTransportHeader(bogus, 0, 0x0badf00d, 0);
    byte[] bigBogus = new byte[65000];
    Message.writeTransportHeader(bigBogus, 0, 0x0badf00d, 1);
    send(s, bogus, port);
    send(s, bigBogus, port);
    awaitCount(c.unknownIndex, unknown + 2, "unknownIndex", a.device());

    // a real session's index with a corrupted tag, and with a corrupted body
    long failed = c.decryptFailed.sum();
    byte[] badTag = fromB.clone();
    badTag[badTag.length - 1] ^= 0x40;
    byte[] badBody = fromB.clone();
    badBody[Message.TRANSPORT_HEADER_LENGTH + 3] ^= 0x01;
    byte[] badCounter = fromB.clone();
    badCounter[Message.TRANSPORT_OFFSET_COUNTER] ^= 0x10;
    send(s, badTag, port);
    send(s, badBody, port);
    send(s, badCounter, port);
    awaitCount(c.decryptFailed, failed + 3, "decryptFailed", a.device());

    // handshake messages with a bad MAC1
    long badMac = c.badMac.sum();
    byte[] badMac1 = initiation.clone();
    badMac1[Message.HandshakeInitiation.OFFSET_MAC1] ^= 1;
    byte[] randomResponse = withType(new byte[92], 2);
    random.nextBytes(randomResponse);
    randomResponse[0] = Message.TYPE_RESPONSE;
    randomResponse[1] = randomResponse[2] = randomResponse[3] = 0;
    send(s, badMac1, port);
    send(s, randomResponse, port);
    awaitCount(c.badMac, badMac + 2, "badMac", a.device());

    // still alive, no stray packets reached the tunnel, and traffic still flows both ways
    assertTrue(a.device().running());
    assertNull(a.tunnel().pollWritten());
    assertPassesBothWays(a, b, 10);
    assertPassesBothWays(a, b, 20);
  }

  private static byte[] withType(byte[] b, int type) {
    if (b.length > 0) {
      b[0] = (byte) type;
    }
    return b;
  }

  private static byte[] reserved(byte[] b) {
    b[2] = 1;
    return b;
  }

  @Test
  void wrongPresharedKeyNeverHandshakes() throws Exception {
    Node a = node("memA", IP_A, Timing.DEFAULT);
    Node b = node("memB", IP_B, Timing.DEFAULT);
    addPeer(a, b, b.port(), "preshared_key=" + "11".repeat(32));
    addPeer(b, a, a.port(), "preshared_key=" + "22".repeat(32));
    assertEquals("11".repeat(32), peerInfo(a, b).get("preshared_key"));

    a.tunnel().inject(ipv4(IP_A, IP_B, 1, 64));
    // B accepts the initiation (the PSK only enters the response); A then rejects the response.
    awaitCount(a.counters().handshakeRejected, 1, "A rejecting B's response", a.device());
    b.tunnel().inject(ipv4(IP_B, IP_A, 2, 64));
    assertNull(
        a.tunnel().awaitWritten(500, TimeUnit.MILLISECONDS), "no session, so nothing gets through");
    assertNull(b.tunnel().pollWritten());
    assertEquals(0, stat(a, b, "last_handshake_time_sec"), "initiator never completed a handshake");
    assertEquals(
        0, stat(b, a, "last_handshake_time_sec"), "responder's session was never confirmed");
    assertEquals(0, a.counters().replayed.sum());

    // With matching keys the next attempt (REKEY_TIMEOUT, 5 s, after the last) succeeds.
    UapiProtocol.set(
        b.device(), List.of("public_key=" + a.publicHex(), "preshared_key=" + "11".repeat(32)));
    byte[] packet = ipv4(IP_A, IP_B, 3, 64);
    a.tunnel().inject(packet);
    byte[] got;
    do {
      got = b.tunnel().awaitWritten(AWAIT_SECONDS, TimeUnit.SECONDS);
      assertNotNull(got, "no packet after fixing the preshared key; " + a.device().dropCounters());
    } while (!Arrays.equals(packet, got)); // the packets staged earlier may be delivered first
    assertTrue(stat(a, b, "last_handshake_time_sec") > 0);
  }

  @Test
  void removedPeerStopsTraffic() throws Exception {
    Node[] n = pair(Timing.DEFAULT);
    Node a = n[0];
    Node b = n[1];
    assertPassesBothWays(a, b, 1);

    UapiProtocol.set(a.device(), List.of("public_key=" + b.publicHex(), "remove=true"));
    assertFalse(UapiProtocol.get(a.device()).contains(b.publicHex()));
    assertFalse(a.device().hasPeer(b.publicKey()));

    long noRoute = a.counters().noRoute.sum();
    a.tunnel().inject(ipv4(IP_A, IP_B, 2, 64));
    awaitCount(a.counters().noRoute, noRoute + 1, "noRoute after removal", a.device());

    // B still has its session, but A no longer knows the index it names
    long unknown = a.counters().unknownIndex.sum();
    b.tunnel().inject(ipv4(IP_B, IP_A, 3, 64));
    awaitCount(a.counters().unknownIndex, unknown + 1, "unknownIndex after removal", a.device());
    assertNull(a.tunnel().pollWritten());
    assertNull(b.tunnel().pollWritten());
  }

  @Test
  void invalidSetRequestsAreRejectedAndChangeNothing() throws Exception {
    Node a = node("memA", IP_A, Timing.DEFAULT);
    Node b = node("memB", IP_B, Timing.DEFAULT);
    addPeer(a, b, b.port());
    String before = UapiProtocol.get(a.device());
    String newPeer =
        "public_key=" + HEX.formatHex(Curve25519.publicKey(Curve25519.generatePrivateKey()));
    String peerB = "public_key=" + b.publicHex();

    List<List<String>> bad =
        List.of(
            List.of("private_key=" + "zz".repeat(32)),
            List.of("private_key=abcd"),
            List.of("listen_port=0", "no_such_key=1"),
            List.of("fwmark=7", newPeer, "allowed_ip=10.0.0.0/8", "no_such_peer_key=1"),
            List.of(peerB, "replace_allowed_ips=true", "allowed_ip=300.1.1.1/8"),
            List.of(peerB, "allowed_ip=10.1.0.0/40"),
            List.of(newPeer, "endpoint=nohost"),
            List.of(peerB, "endpoint=nohost:51820"),
            List.of(peerB, "endpoint=127.0.0.1:0"),
            List.of("listen_port=70000"),
            List.of("listen_port=-1"),
            List.of("fwmark=7", newPeer, "protocol_version=2"),
            List.of(peerB, "remove=false"),
            List.of(peerB, "persistent_keepalive_interval=65536"),
            List.of("replace_peers=true", "garbage line without equals"),
            List.of(peerB, "preshared_key=" + "0".repeat(63)));
    for (List<String> request : bad) {
      UapiException e =
          assertThrows(
              UapiException.class,
              () -> UapiProtocol.set(a.device(), request),
              "accepted " + request);
      assertEquals(22, e.errno(), request + ": " + e.getMessage());
      assertEquals(UapiProtocol.EINVAL, e.errno());
      assertEquals(
          before, UapiProtocol.get(a.device()), "request " + request + " changed the device");
    }
    // a valid request does change it
    UapiProtocol.set(a.device(), List.of("fwmark=7"));
    assertNotEquals(before, UapiProtocol.get(a.device()));
  }

  // ---- timers ------------------------------------------------------------------------------

  @Test
  @Timeout(value = 30, unit = TimeUnit.SECONDS)
  void shortRekeyAfterTimeRenewsSessionWithoutLosingPackets() throws Exception {
    Timing d = Timing.DEFAULT;
    Timing fast =
        new Timing(
            TimeUnit.SECONDS.toNanos(1),
            d.rejectAfterTime(),
            d.rekeyAttemptTime(),
            d.rekeyTimeout(),
            d.rekeyTimeoutJitterMax(),
            d.keepaliveTimeout(),
            d.rekeyAfterMessages(),
            d.rejectAfterMessages());
    Node[] n = pair(fast);
    Node a = n[0];
    Node b = n[1];
    assertPassesBothWays(a, b, 0);
    long firstA = handshakeNanos(a, b);
    long firstB = handshakeNanos(b, a);
    Keypair firstKeypair = a.device().peerByPublicKey(b.publicKey()).currentKeypair();
    assertTrue(firstA > 0 && firstB > 0);

    // Continuous traffic, one packet each way at a time; every packet must arrive.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    int seq = 1;
    int afterRekey = -1;
    while (afterRekey < 20) {
      assertTrue(
          System.nanoTime() - deadline < 0, "no rekey within 15 s; " + a.device().dropCounters());
      assertPassesBothWays(a, b, seq);
      seq += 2;
      if (afterRekey >= 0) {
        afterRekey++;
      } else if (handshakeNanos(a, b) != firstA && handshakeNanos(b, a) != firstB) {
        afterRekey = 0;
      }
      if (afterRekey < 0) {
        Thread.sleep(20); // pace the stream; the rekey itself is awaited by the loop condition
      }
    }
    assertNotEquals(
        firstKeypair,
        a.device().peerByPublicKey(b.publicKey()).currentKeypair(),
        "a new session is current");
    for (Node x : n) {
      assertEquals(
          0,
          x.counters().decryptFailed.sum()
              + x.counters().replayed.sum()
              + x.counters().handshakeRejected.sum(),
          x.device().dropCounters());
    }
  }

  @Test
  void underLoadInitiationGetsCookieReplyAndThenHandshakesWithMac2() throws Exception {
    Node a = node("memA", IP_A, Timing.DEFAULT);
    DatagramSocket us = socket();
    DatagramSocket elsewhere = socket();
    byte[] ourPrivate = Curve25519.generatePrivateKey();
    byte[] ourPublic = Curve25519.publicKey(ourPrivate);
    UapiProtocol.set(
        a.device(),
        List.of(
            "public_key=" + HEX.formatHex(ourPublic),
            "allowed_ip=100.64.0.9/32",
            "endpoint=127.0.0.1:" + us.getLocalPort()));
    Handshake handshake = new Handshake(ourPrivate, a.publicKey());
    Cookie.Generator macs = new Cookie.Generator(a.publicKey());
    InetSocketAddress ourAddress = new InetSocketAddress(LOOPBACK, us.getLocalPort());

    byte[] first = handshake.createInitiation(77, Tai64n.now()).encode();
    macs.addMacs(first, System.nanoTime());
    processOnControlThread(a, first, ourAddress, true);
    byte[] replyWire = receive(us, 5000);
    assertNotNull(replyWire, "no cookie reply");
    assertEquals(Message.TYPE_COOKIE_REPLY, Message.typeOf(replyWire, 0, replyWire.length));
    Message.CookieReply reply = Message.CookieReply.parse(replyWire, 0, replyWire.length);
    assertEquals(77, reply.receiver());
    assertEquals(1, a.counters().cookieRepliesSent.sum());
    assertEquals(0, a.counters().handshakeRejected.sum(), "no DH work was done");
    assertTrue(macs.consumeReply(reply, System.nanoTime()));

    byte[] second =
        handshake.createInitiation(78, Tai64n.of(Instant.now().plusSeconds(1))).encode();
    macs.addMacs(second, System.nanoTime());
    // mac2 is bound to our address and port: from elsewhere it earns another cookie reply
    processOnControlThread(
        a, second, new InetSocketAddress(LOOPBACK, elsewhere.getLocalPort()), true);
    byte[] otherReply = receive(elsewhere, 5000);
    assertNotNull(otherReply);
    assertEquals(Message.TYPE_COOKIE_REPLY, Message.typeOf(otherReply, 0, otherReply.length));
    assertEquals(2, a.counters().cookieRepliesSent.sum());

    processOnControlThread(a, second, ourAddress, true);
    byte[] responseWire = receive(us, 5000);
    assertNotNull(responseWire, "no handshake response");
    Message.HandshakeResponse response =
        Message.HandshakeResponse.parse(responseWire, 0, responseWire.length);
    assertNotNull(response, "expected a response, got type " + responseWire[0]);
    assertEquals(78, response.receiver());
    assertTrue(handshake.consumeResponse(response));
    assertNotNull(handshake.deriveKeys(System.nanoTime()));
    assertEquals(2, a.counters().cookieRepliesSent.sum());
  }

  private static void processOnControlThread(
      Node n, byte[] msg, InetSocketAddress source, boolean underLoad) throws Exception {
    CompletableFuture<Void> done = new CompletableFuture<>();
    n.device()
        .runOnControlThread(
            () -> {
              try {
                n.device().handshakes().process(msg, source, underLoad);
                done.complete(null);
              } catch (RuntimeException e) {
                done.completeExceptionally(e);
              }
            });
    done.get(AWAIT_SECONDS, TimeUnit.SECONDS);
  }

  @Test
  void floodOfInitiationsPutsDeviceUnderLoad() throws Exception {
    Node a = node("memA", IP_A, Timing.DEFAULT);
    DatagramSocket s = socket();
    Handshake stranger = new Handshake(Curve25519.generatePrivateKey(), a.publicKey());
    byte[] initiation = stranger.createInitiation(5, Tai64n.now()).encode();
    new Cookie.Generator(a.publicKey()).addMacs(initiation, System.nanoTime());

    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(AWAIT_SECONDS);
    while (a.counters().cookieRepliesSent.sum() == 0) {
      assertTrue(
          System.nanoTime() - deadline < 0, "never under load: " + a.device().dropCounters());
      for (int i = 0; i < 4 * HandshakeProcessor.UNDER_LOAD_BACKLOG; i++) {
        send(s, initiation, a.port());
      }
    }
    byte[] got = null;
    for (int i = 0; i < 10_000 && got == null; i++) {
      byte[] d = receive(s, 5000);
      assertNotNull(d, "cookie reply counted but none received");
      if (Message.typeOf(d, 0, d.length) == Message.TYPE_COOKIE_REPLY) {
        got = d;
      }
    }
    assertNotNull(got);
    assertEquals(5, Message.CookieReply.parse(got, 0, got.length).receiver());
    assertTrue(
        a.counters().handshakeRejected.sum() > 0,
        "before the backlog built up, initiations were processed");
    assertTrue(a.device().running());
  }
}
