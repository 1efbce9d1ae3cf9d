package dev.trellis.dataplane.wireguard;

import dev.trellis.dataplane.offload.Offloads;
import dev.trellis.dataplane.tun.PacketTunnel;
import dev.trellis.proto.wireguard.AllowedIps;
import dev.trellis.proto.wireguard.Cookie;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A userspace WireGuard interface: a packet tunnel (TUN) on one side, a UDP socket on the other,
 * and the peers between them. Threads: one reads the tunnel and seals (the outbound path), one
 * reads the socket and opens (the inbound path), and one control thread runs handshakes, timers and
 * anything else that is not per-packet. Configuration calls are synchronized on the device. How a
 * peer is reached is the {@link PeerTransport}'s business: the device knows peers by key and
 * endpoint only, never relays or path discovery.
 */
public final class Device implements AutoCloseable {
  static final Logger LOG = LoggerFactory.getLogger(Device.class);

  /** Largest IP packet we handle. */
  static final int MAX_PACKET = 65535;

  /**
   * How often the control thread checks the peers' timer deadlines. The shortest WireGuard timer is
   * the 5 s handshake retransmit (with up to 334 ms jitter), so a quarter second is precise enough,
   * and an idle node wakes 4 times a second for it rather than 20. Handshakes a packet asks for
   * start at once, not on a tick.
   */
  static final long TICK_MILLIS = 250;

  private final PacketTunnel tunnel;
  private final Timing timing;
  private final Offloads offloads;
  private final IndexTable indexTable = new IndexTable();
  private final AllowedIps<Peer> allowedIps = new AllowedIps<>();
  private final ConcurrentHashMap<String, Peer> peers = new ConcurrentHashMap<>();
  private final DeviceCounters counters = new DeviceCounters();
  private final ScheduledThreadPoolExecutor control;
  private final PacketSealer controlSealer;
  private final HandshakeProcessor handshakes;
  private final CountDownLatch closed = new CountDownLatch(1);

  private volatile byte[] privateKey;
  private volatile byte[] publicKey;
  private volatile Cookie.Checker cookieChecker;
  private volatile UdpBind bind;
  private volatile int requestedPort;
  private volatile int fwmark;

  /** Null: every message goes by UDP to the peer's endpoint. */
  private volatile PeerTransport transport;

  private volatile DatagramTap tap;

  /** Null: every authenticated packet from a peer's allowed IPs is written to the tunnel. */
  private volatile InboundFilter inboundFilter;

  /** Null: plain WireGuard (multicast no peer covers has no route; from peers it is written). */
  private volatile MulticastRouter multicast;

  /** Messages from {@link #receive} (another transport) are opened here, on the caller's thread. */
  private final InboundPath externalInbound;

  private volatile boolean running;
  private volatile Thread outboundThread;
  private OutboundPath outbound;
  private Thread inboundThread;

  /** A device with the offloads {@code TRELLIS_OFFLOADS} allows (all by default). */
  public Device(PacketTunnel tunnel, Timing timing) {
    this(tunnel, timing, Offloads.fromEnvironment());
  }

  /** {@code offloads} says which UDP offloads to try; the tunnel's are the tunnel's own. */
  public Device(PacketTunnel tunnel, Timing timing, Offloads offloads) {
    this.tunnel = tunnel;
    this.timing = timing;
    this.offloads = offloads;
    this.control =
        new ScheduledThreadPoolExecutor(
            1,
            r -> {
              Thread t = new Thread(r, "wg-control-" + tunnel.name());
              t.setDaemon(true);
              return t;
            });
    this.controlSealer = new PacketSealer(this);
    this.handshakes = new HandshakeProcessor(this);
    this.externalInbound = InboundPath.forExternalMessages(this);
  }

  /** Opens the UDP socket (random port until one is set) and starts the packet threads. */
  public synchronized void start() throws IOException {
    if (running) {
      return;
    }
    bind = UdpBind.open(requestedPort, offloads);
    running = true;
    outbound = new OutboundPath(this);
    outboundThread =
        Thread.ofPlatform().name("wg-outbound-" + tunnel.name()).daemon().start(outbound);
    inboundThread =
        Thread.ofPlatform()
            .name("wg-inbound-" + tunnel.name())
            .daemon()
            .start(new InboundPath(this));
    control.scheduleAtFixedRate(this::tick, TICK_MILLIS, TICK_MILLIS, TimeUnit.MILLISECONDS);
  }

  private void tick() {
    long now = System.nanoTime();
    for (Peer peer : peers.values()) {
      try {
        peer.timers.tick(now);
      } catch (RuntimeException e) {
        LOG.warn("timer of peer " + peer.publicKeyHex() + " failed", e);
      }
    }
  }

  // ---- accessors for the packet paths ------------------------------------------------------

  PacketTunnel tunnel() {
    return tunnel;
  }

  Timing timing() {
    return timing;
  }

  IndexTable indexTable() {
    return indexTable;
  }

  AllowedIps<Peer> allowedIps() {
    return allowedIps;
  }

  DeviceCounters counters() {
    return counters;
  }

  /** Packets dropped since start, by reason (the metrics' label values); safe from any thread. */
  public Map<String, Long> dropCounts() {
    return counters.byReason();
  }

  PacketSealer controlSealer() {
    return controlSealer;
  }

  HandshakeProcessor handshakes() {
    return handshakes;
  }

  UdpBind bind() {
    return bind;
  }

  boolean running() {
    return running;
  }

  int mtu() {
    return tunnel.mtu();
  }

  byte[] privateKeyRaw() {
    return privateKey;
  }

  byte[] publicKeyRaw() {
    return publicKey;
  }

  Cookie.Checker cookieChecker() {
    return cookieChecker;
  }

  Peer peerByPublicKey(byte[] key) {
    return peers.get(HexFormat.of().formatHex(key));
  }

  void runOnControlThread(Runnable task) {
    try {
      control.execute(
          () -> {
            try {
              task.run();
            } catch (RuntimeException e) {
              LOG.warn("control task failed", e);
            }
          });
    } catch (RejectedExecutionException e) {
      // shutting down
    }
  }

  void sendDatagram(byte[] wire, int length, InetSocketAddress to) {
    UdpBind b = bind;
    if (b == null) {
      return;
    }
    // The outbound thread batches what it seals from one read of the tunnel and sends the run in
    // one call when the read is used up; every other thread sends at once.
    if (Thread.currentThread() == outboundThread && b.segmentsInOneCall()) {
      outbound.batch(b, wire, length, to);
      return;
    }
    try {
      b.send(wire, 0, length, to);
    } catch (IOException e) {
      // Unreachable networks and closed sockets during rebinds are routine; the timers retry.
      LOG.debug("send to " + to + " failed", e);
    }
  }

  /** Sends to the peer through the transport, or by UDP to its endpoint when there is none. */
  boolean sendToPeer(Peer peer, byte[] wire, int length) {
    InetSocketAddress to = peer.endpoint();
    PeerTransport t = transport;
    if (t != null) {
      return t.send(peer.publicKeyRaw(), to, wire, length);
    }
    if (to == null) {
      return false;
    }
    sendDatagram(wire, length, to);
    return true;
  }

  /** Answers a message that came in through {@link #receive}, the way it came. */
  boolean replyExternal(Peer peer, byte[] wire, int length) {
    PeerTransport t = transport;
    return t != null && t.reply(peer.publicKeyRaw(), wire, length);
  }

  /** Whether {@link #sendToPeer} has anywhere to send this peer's packets. */
  boolean reachable(Peer peer) {
    PeerTransport t = transport;
    return t != null ? t.canReach(peer.publicKeyRaw(), peer.endpoint()) : peer.endpoint() != null;
  }

  DatagramTap tap() {
    return tap;
  }

  InboundFilter inboundFilter() {
    return inboundFilter;
  }

  /** The inbound or outbound path ended because the tunnel went away: the device goes down. */
  void tunnelGone() {
    runOnControlThread(this::close);
    if (control.isShutdown()) {
      close();
    }
  }

  // ---- configuration -----------------------------------------------------------------------

  /**
   * Sets (or with null removes) our static private key; it is clamped as every implementation does.
   */
  public synchronized void setPrivateKey(byte[] key) {
    byte[] clamped = key == null || isZero(key) ? null : Curve25519.clamp(key);
    privateKey = clamped;
    publicKey = clamped == null ? null : Curve25519.publicKey(clamped);
    cookieChecker = clamped == null ? null : new Cookie.Checker(publicKey);
    if (publicKey != null) {
      // A peer with our own public key would be talking to itself.
      removePeer(publicKey);
    }
    for (Peer peer : peers.values()) {
      peer.rekeyLocalIdentity(clamped);
    }
  }

  public synchronized byte[] privateKey() {
    return privateKey == null ? null : privateKey.clone();
  }

  public synchronized void setListenPort(int port) throws IOException {
    if (port < 0 || port > 65535) {
      throw new IllegalArgumentException("listen port out of range: " + port);
    }
    requestedPort = port;
    if (!running) {
      return;
    }
    UdpBind current = bind;
    if (current != null && port != 0 && current.port() == port) {
      return;
    }
    UdpBind replacement;
    if (current != null) {
      current.close();
    }
    try {
      replacement = UdpBind.open(port, offloads);
    } catch (IOException e) {
      bind = current == null ? null : UdpBind.open(0, offloads);
      throw e;
    }
    bind = replacement;
  }

  public int listenPort() {
    UdpBind b = bind;
    return b == null ? requestedPort : b.port();
  }

  /** Where peers' messages go (null: by UDP to each peer's endpoint). */
  public void setTransport(PeerTransport transport) {
    this.transport = transport;
  }

  /** Takes the non-WireGuard datagrams on the socket (null: they count as malformed). */
  public void setDatagramTap(DatagramTap tap) {
    this.tap = tap;
  }

  /**
   * What decides which packets from peers reach the tunnel (null: all that authenticate and come
   * from the peer's allowed IPs). Takes effect with the next packet.
   */
  public void setInboundFilter(InboundFilter filter) {
    this.inboundFilter = filter;
  }

  /** Where multicast goes (null: as plain WireGuard). Takes effect with the next packet. */
  public void setMulticastRouter(MulticastRouter router) {
    this.multicast = router;
  }

  MulticastRouter multicastRouter() {
    return multicast;
  }

  /** Sends a datagram from the WireGuard socket (what a transport uses for a direct path). */
  public void sendUdp(byte[] datagram, int length, InetSocketAddress to) {
    sendDatagram(datagram, length, to);
  }

  /**
   * A WireGuard message that arrived some other way than the UDP socket (e.g. a relay). Runs on the
   * caller's thread, with its own buffers; the peer's UDP endpoint does not roam to it.
   */
  public void receive(byte[] message, int length) {
    try {
      externalInbound.handleExternal(message, length);
    } catch (IOException e) {
      tunnelGone();
    } catch (RuntimeException e) {
      counters.malformed.increment();
    }
  }

  public void setFwmark(int mark) {
    fwmark = mark;
  }

  public int fwmark() {
    return fwmark;
  }

  public synchronized boolean hasPeer(byte[] publicKey) {
    return peerByPublicKey(publicKey) != null;
  }

  /** Adds a peer (no-op if it exists). Our own public key is refused, as in wireguard-go. */
  public synchronized boolean addPeer(byte[] peerKey) {
    if (peerKey.length != Curve25519.KEY_LENGTH) {
      throw new IllegalArgumentException("public key must be 32 bytes");
    }
    if (publicKey != null && Arrays.equals(publicKey, peerKey)) {
      return false;
    }
    peers.computeIfAbsent(
        HexFormat.of().formatHex(peerKey), k -> new Peer(this, peerKey, privateKey, timing));
    return true;
  }

  public synchronized void removePeer(byte[] peerKey) {
    Peer peer = peers.remove(HexFormat.of().formatHex(peerKey));
    if (peer != null) {
      allowedIps.removeAll(peer);
      peer.timers.stopAll();
      peer.zeroKeyMaterial();
      indexTable.removeAll(peer);
    }
  }

  public synchronized void removeAllPeers() {
    for (Peer peer : new ArrayList<>(peers.values())) {
      removePeer(peer.publicKey());
    }
  }

  private Peer requirePeer(byte[] peerKey) {
    Peer peer = peerByPublicKey(peerKey);
    if (peer == null) {
      throw new IllegalArgumentException("no such peer");
    }
    return peer;
  }

  public synchronized void setPeerPresharedKey(byte[] peerKey, byte[] psk) {
    requirePeer(peerKey).setPresharedKey(psk == null || isZero(psk) ? null : psk);
  }

  public synchronized void setPeerEndpoint(byte[] peerKey, InetSocketAddress endpoint) {
    requirePeer(peerKey).setEndpoint(endpoint);
  }

  /**
   * A newly enabled persistent keepalive sends one at once, as the reference implementations do.
   */
  public synchronized void setPeerPersistentKeepalive(byte[] peerKey, int seconds) {
    if (seconds < 0 || seconds > 65535) {
      throw new IllegalArgumentException("persistent keepalive interval out of range: " + seconds);
    }
    Peer peer = requirePeer(peerKey);
    int old = peer.persistentKeepaliveSeconds();
    peer.setPersistentKeepalive(seconds);
    if (old == 0 && seconds > 0 && running) {
      runOnControlThread(peer::sendKeepalive);
    }
  }

  public synchronized void replacePeerAllowedIps(byte[] peerKey) {
    allowedIps.removeAll(requirePeer(peerKey));
  }

  public synchronized void addPeerAllowedIp(byte[] peerKey, AllowedIps.Prefix prefix) {
    allowedIps.insert(prefix, requirePeer(peerKey));
  }

  /** A consistent snapshot of one peer for the userspace API. */
  public record PeerStatus(
      byte[] publicKey,
      byte[] presharedKey,
      InetSocketAddress endpoint,
      long lastHandshakeEpochNanos,
      long txBytes,
      long rxBytes,
      int persistentKeepaliveSeconds,
      List<AllowedIps.Prefix> allowedIps) {}

  public synchronized List<PeerStatus> peerStatuses() {
    List<PeerStatus> out = new ArrayList<>();
    for (Peer peer : peers.values()) {
      out.add(
          new PeerStatus(
              peer.publicKey(),
              peer.presharedKey(),
              peer.endpoint(),
              peer.lastHandshakeEpochNanos(),
              peer.txBytes.get(),
              peer.rxBytes.get(),
              peer.persistentKeepaliveSeconds(),
              allowedIps.prefixesOf(peer)));
    }
    return out;
  }

  public String dropCounters() {
    return counters.toString();
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Blocks until the device is closed (by close() or because its tunnel disappeared). */
  public void awaitClosed() throws InterruptedException {
    closed.await();
  }

  @Override
  public void close() {
    synchronized (this) {
      if (!running && closed.getCount() == 0) {
        return;
      }
      running = false;
      UdpBind b = bind;
      bind = null;
      if (b != null) {
        b.close();
      }
      tunnel.close();
      for (Peer peer : peers.values()) {
        peer.timers.stopAll();
        peer.zeroKeyMaterial();
      }
    }
    control.shutdownNow();
    closed.countDown();
  }

  static boolean isZero(byte[] key) {
    int acc = 0;
    for (byte b : key) {
      acc |= b;
    }
    return acc == 0;
  }
}
