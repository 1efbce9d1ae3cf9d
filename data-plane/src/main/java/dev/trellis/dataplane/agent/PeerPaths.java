package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.stun.StunClient;
import dev.trellis.dataplane.wireguard.DatagramTap;
import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.dataplane.wireguard.PeerTransport;
import dev.trellis.proto.disco.DiscoMessage;
import dev.trellis.proto.wireguard.Curve25519;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Every peer's {@link PeerPath}, and the device's {@link PeerTransport} (compare tailscale's
 * magicsock {@code Conn}): a WireGuard message for a peer goes by UDP when its path is direct and
 * through the relay otherwise. It also speaks path discovery on the WireGuard socket (as its {@link
 * DatagramTap}) and through the relay: pings each peer's candidate endpoints, and while no direct
 * path works sends the peer a CallMeMaybe through the relay, so it pings back at the same moment
 * and both NATs and stateful firewalls see outbound traffic first. STUN answers to questions asked
 * from the WireGuard socket come back here too.
 *
 * <p>Threads: the path state is owned by one thread ("peer-paths"); the packet threads call the
 * {@link PeerTransport} methods, which only read volatile state; relay clients call {@link
 * #receiveRelayed} on their own threads.
 */
public final class PeerPaths implements PeerTransport, DatagramTap, AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(PeerPaths.class);
  static final int STUN_MAGIC_COOKIE = 0x2112A442;

  /** Sends through the relay connections; implemented by {@link RelayConnections}. */
  public interface Relay {
    /** Whether a relay connection could take messages for this peer now. */
    boolean canSend(byte[] peerKey);

    /** False when there is no relay connection for the peer or it dropped the message. */
    boolean send(byte[] peerKey, byte[] message, int offset, int length);
  }

  /**
   * One answered ping for `trellis ping`: the path it took ("relay" or "IP:PORT") and its round
   * trip.
   */
  public record PingResult(String path, long rttNanos) {}

  private static final Relay NO_RELAY =
      new Relay() {
        @Override
        public boolean canSend(byte[] peerKey) {
          return false;
        }

        @Override
        public boolean send(byte[] peerKey, byte[] message, int offset, int length) {
          return false;
        }
      };

  /**
   * Data makes a peer active: a transport message (type 4) longer than a keepalive (header and tag,
   * no payload). Handshakes and keepalives do not.
   */
  private static final int KEEPALIVE_LENGTH = 32;

  private static final byte TRANSPORT_TYPE = 4;

  private final Device device;
  private final byte[] ownPrivate;
  private final byte[] ownPublic;
  private final Supplier<List<String>> ownEndpoints;
  private final ScheduledExecutorService loop;
  private volatile Relay relay = NO_RELAY;

  /** Written on the paths thread, read by the packet threads. */
  private final Map<ByteBuffer, PeerPath> paths = new ConcurrentHashMap<>();

  /**
   * The packet path's lookup: by the device's own key array of each peer (one instance per peer,
   * never modified), so a packet costs no allocation. Copied on write by the packet threads as
   * peers are first seen; replaced by an empty one when the peers change.
   */
  private volatile IdentityHashMap<byte[], PeerPath> byDeviceKey = new IdentityHashMap<>();

  /** STUN transactions sent from the device's socket, waiting for their response. */
  private final Map<StunClient.Transaction, CompletableFuture<InetSocketAddress>> stunPending =
      new ConcurrentHashMap<>();

  public PeerPaths(Device device, byte[] nodePrivateKey, Supplier<List<String>> ownEndpoints) {
    this.device = device;
    this.ownPrivate = nodePrivateKey.clone();
    this.ownPublic = Curve25519.publicKey(nodePrivateKey);
    this.ownEndpoints = ownEndpoints;
    this.loop =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "peer-paths");
              t.setDaemon(true);
              return t;
            });
    long tick = AgentTiming.PATH_TICK.toMillis();
    loop.scheduleWithFixedDelay(this::tick, tick, tick, TimeUnit.MILLISECONDS);
  }

  /** Makes this the device's transport and socket tap. */
  public void attach() {
    device.setTransport(this);
    device.setDatagramTap(this);
  }

  void setRelay(Relay relay) {
    this.relay = relay == null ? NO_RELAY : relay;
  }

  /** One peer as the map lists it: hostname (for log lines) and candidate endpoints. */
  record Peer(String name, List<InetSocketAddress> candidates) {}

  /** The peers, by node key in base64, from the network map; an unusable key is skipped. */
  void setPeers(Map<String, Peer> peers) {
    loop.execute(
        ControlConnection.guarded(
            () -> {
              Map<ByteBuffer, Peer> byKey = new HashMap<>();
              peers.forEach(
                  (k, v) -> {
                    byte[] key = PeerReconciler.decodeKey(k);
                    if (key == null) {
                      LOG.warn("peer {} has an unusable node key '{}'; no path kept", v.name(), k);
                    } else {
                      byKey.put(ByteBuffer.wrap(key), v);
                    }
                  });
              paths.keySet().removeIf(k -> !byKey.containsKey(k));
              byKey.forEach(
                  (k, peer) -> {
                    PeerPath p = paths.get(k);
                    if (p == null) {
                      byte[] key = k.array();
                      byte[] shared = DiscoMessage.sharedKey(ownPrivate, key);
                      if (shared == null) {
                        return;
                      }
                      p = new PeerPath(key, shared, peer.name()); // every peer starts on the relay
                      paths.put(k, p);
                    }
                    p.name = peer.name();
                    p.setCandidates(peer.candidates());
                  });
              byDeviceKey = new IdentityHashMap<>();
            }));
  }

  /** Each peer's path now (keys in base64); reads snapshots, never waits for the paths thread. */
  Map<String, PeerPath.Status> statuses() {
    Map<String, PeerPath.Status> m = new HashMap<>();
    paths.forEach((k, p) -> m.put(Base64.getEncoder().encodeToString(p.key), p.status()));
    return m;
  }

  /** One disco ping over the peer's current path, for `trellis ping`. */
  CompletableFuture<PingResult> ping(String peerKey) {
    CompletableFuture<PingResult> result = new CompletableFuture<>();
    loop.execute(
        () -> {
          PeerPath p = paths.get(ByteBuffer.wrap(Base64.getDecoder().decode(peerKey)));
          if (p == null) {
            result.completeExceptionally(new IllegalArgumentException("no such peer"));
            return;
          }
          byte[] txid = DiscoMessage.newTxid();
          byte[] sealed = DiscoMessage.seal(new DiscoMessage.Ping(txid), ownPublic, p.sharedKey);
          InetSocketAddress direct = p.direct();
          p.pending.put(
              HexFormat.of().formatHex(txid),
              new PeerPath.Pending(
                  direct,
                  System.nanoTime(),
                  direct != null ? PathQuality.Kind.DIRECT : PathQuality.Kind.RELAY,
                  result));
          if (direct != null) {
            device.sendUdp(sealed, sealed.length, direct);
          } else if (!relay.send(p.key, sealed, 0, sealed.length)) {
            result.completeExceptionally(new IllegalStateException("no direct path and no relay"));
          }
        });
    return result.orTimeout(AgentTiming.PING_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
  }

  /**
   * This node's reflexive address as {@code stunServer} sees the WireGuard socket (the address a
   * peer behind another NAT must aim at), asked from that very socket; fails after {@code timeout}.
   */
  CompletableFuture<InetSocketAddress> reflexiveAddress(
      InetSocketAddress stunServer, Duration timeout) {
    StunClient.Transaction t = new StunClient.Transaction();
    CompletableFuture<InetSocketAddress> result = new CompletableFuture<>();
    stunPending.put(t, result);
    byte[] request = t.request();
    for (int i = 0; i < AgentTiming.STUN_ATTEMPTS; i++) {
      loop.schedule(
          () -> {
            if (!result.isDone()) {
              device.sendUdp(request, request.length, stunServer);
            }
          },
          i * AgentTiming.STUN_RETRANSMIT.toMillis(),
          TimeUnit.MILLISECONDS);
    }
    return result
        .orTimeout(timeout.toMillis(), TimeUnit.MILLISECONDS)
        .whenComplete((a, e) -> stunPending.remove(t));
  }

  // ---- PeerTransport (packet threads) ------------------------------------------------------

  @Override
  public boolean send(byte[] peerKey, InetSocketAddress endpoint, byte[] message, int length) {
    PeerPath p = pathOf(peerKey);
    if (p != null && length > KEEPALIVE_LENGTH && message[0] == TRANSPORT_TYPE) {
      p.dataSent();
    }
    InetSocketAddress direct = p == null ? endpoint : p.direct();
    if (direct != null) {
      // The device's endpoint follows the peer when it roams; the path set it when it went direct.
      device.sendUdp(message, length, endpoint != null ? endpoint : direct);
      return true;
    }
    Relay r = relay;
    if (r.canSend(peerKey)) {
      return r.send(peerKey, message, 0, length);
    }
    if (endpoint == null) {
      return false;
    }
    device.sendUdp(message, length, endpoint); // no relay connection (yet): try the map's endpoint
    return true;
  }

  /** The path of the peer with this key, without allocating once the key array has been seen. */
  private PeerPath pathOf(byte[] peerKey) {
    IdentityHashMap<byte[], PeerPath> cache = byDeviceKey;
    PeerPath p = cache.get(peerKey);
    if (p == null) {
      p = paths.get(ByteBuffer.wrap(peerKey));
      if (p != null) {
        IdentityHashMap<byte[], PeerPath> next = new IdentityHashMap<>(cache);
        next.put(peerKey, p);
        byDeviceKey = next; // a lost race only costs another lookup
      }
    }
    return p;
  }

  @Override
  public boolean canReach(byte[] peerKey, InetSocketAddress endpoint) {
    return endpoint != null || relay.canSend(peerKey);
  }

  @Override
  public boolean reply(byte[] peerKey, byte[] message, int length) {
    return relay.send(peerKey, message, 0, length);
  }

  // ---- inbound -----------------------------------------------------------------------------

  /** A non-WireGuard datagram on the WireGuard socket (inbound thread). */
  @Override
  public boolean offer(byte[] buf, int length, InetSocketAddress source) {
    if (DiscoMessage.looksLikeDisco(buf, length)) {
      byte[] copy = Arrays.copyOf(buf, length);
      loop.execute(() -> receive(copy, source));
      return true;
    }
    if (!isStun(buf, length)) {
      return false;
    }
    if (!stunPending.isEmpty()) {
      byte[] copy = Arrays.copyOf(buf, length);
      loop.execute(
          () -> {
            for (var t : List.copyOf(stunPending.entrySet())) {
              if (t.getKey().accept(copy, 0, copy.length) instanceof StunClient.Outcome.Mapped m) {
                stunPending.remove(t.getKey());
                t.getValue().complete(m.address());
              }
            }
          });
    }
    return true;
  }

  /** A packet that came through a relay from {@code srcKey} (a relay client's thread). */
  void receiveRelayed(byte[] srcKey, byte[] packet, int length) {
    if (DiscoMessage.looksLikeDisco(packet, length)) {
      byte[] copy = Arrays.copyOf(packet, length);
      loop.execute(() -> receive(copy, null));
    } else {
      device.receive(packet, length);
    }
  }

  static boolean isStun(byte[] buf, int length) {
    return length >= 20
        && (buf[0] & 0xC0) == 0
        && ((buf[4] & 0xff) << 24 | (buf[5] & 0xff) << 16 | (buf[6] & 0xff) << 8 | (buf[7] & 0xff))
            == STUN_MAGIC_COOKIE;
  }

  /** A disco message from {@code source}, or through the relay when null (paths thread). */
  private void receive(byte[] datagram, InetSocketAddress source) {
    byte[] sender = DiscoMessage.senderOf(datagram, datagram.length);
    PeerPath p = sender == null ? null : paths.get(ByteBuffer.wrap(sender));
    DiscoMessage.Opened opened =
        p == null ? null : DiscoMessage.open(datagram, datagram.length, p.sharedKey);
    if (opened == null) {
      return;
    }
    long now = System.nanoTime();
    switch (opened.message()) {
      case DiscoMessage.Ping ping -> {
        String seen = source == null ? "relay" : Endpoints.format(source);
        byte[] pong =
            DiscoMessage.seal(new DiscoMessage.Pong(ping.txid(), seen), ownPublic, p.sharedKey);
        if (source != null) {
          device.sendUdp(pong, pong.length, source);
        } else {
          relay.send(p.key, pong, 0, pong.length);
        }
      }
      case DiscoMessage.Pong pong -> {
        PeerPath.Pending sent = p.pending.remove(HexFormat.of().formatHex(pong.txid()));
        if (sent == null) {
          return;
        }
        long rtt = now - sent.sentNanos();
        p.quality.answered(sent.kind(), rtt);
        boolean endpointSet = source != null && !p.wouldMoveTo(source);
        if (p.wouldMoveTo(source)) {
          // The device's endpoint first, then the path: packets never go to an address it lacks.
          try {
            device.setPeerEndpoint(p.key, source);
            endpointSet = true;
          } catch (IllegalArgumentException notYetAPeer) {
            // the map delta adding it is still on its way; a later pong moves the path
          }
        }
        if (p.onPong(source, rtt, now, endpointSet) == PeerPath.Change.NOW_DIRECT) {
          LOG.info("direct path to {} via {}", p.name, source);
        }
        if (sent.waiter() != null) {
          sent.waiter()
              .complete(new PingResult(source == null ? "relay" : Endpoints.format(source), rtt));
        }
      }
      case DiscoMessage.CallMeMaybe call -> {
        // Ping every endpoint the peer named right now, so our outbound opens the way.
        for (String endpoint : call.endpoints()) {
          InetSocketAddress address = Endpoints.parseOrNull(endpoint);
          if (address != null) {
            probe(p, address, now);
          }
        }
      }
    }
  }

  // ---- probing (paths thread) --------------------------------------------------------------

  private void tick() {
    try {
      long now = System.nanoTime();
      for (PeerPath p : paths.values()) {
        p.noteActivity(now);
        InetSocketAddress lost = p.expireDirect(now);
        if (lost != null) {
          LOG.info("direct path to {} via {} stopped; using the relay", p.name, lost);
        }
        for (InetSocketAddress target : p.probesDue(now)) {
          probe(p, target, now);
        }
        if (p.relayQualityDue(now) && relay.canSend(p.key)) {
          relayPing(p, now);
        }
        if (p.callMeMaybeDue(now)) {
          List<String> ours = ownEndpoints.get();
          if (!ours.isEmpty()) {
            byte[] call =
                DiscoMessage.seal(new DiscoMessage.CallMeMaybe(ours), ownPublic, p.sharedKey);
            relay.send(p.key, call, 0, call.length);
          }
        }
      }
    } catch (RuntimeException e) {
      LOG.warn("path discovery tick failed", e);
    }
  }

  private void probe(PeerPath p, InetSocketAddress target, long now) {
    byte[] txid = DiscoMessage.newTxid();
    PathQuality.Kind kind =
        target.equals(p.direct()) ? PathQuality.Kind.DIRECT : PathQuality.Kind.OTHER;
    p.pending.put(HexFormat.of().formatHex(txid), new PeerPath.Pending(target, now, kind, null));
    byte[] ping = DiscoMessage.seal(new DiscoMessage.Ping(txid), ownPublic, p.sharedKey);
    device.sendUdp(ping, ping.length, target);
  }

  /** A quality ping through the relay (answered through it). */
  private void relayPing(PeerPath p, long now) {
    byte[] txid = DiscoMessage.newTxid();
    byte[] ping = DiscoMessage.seal(new DiscoMessage.Ping(txid), ownPublic, p.sharedKey);
    if (relay.send(p.key, ping, 0, ping.length)) {
      p.pending.put(
          HexFormat.of().formatHex(txid),
          new PeerPath.Pending(null, now, PathQuality.Kind.RELAY, null));
    }
  }

  @Override
  public void close() {
    loop.shutdownNow();
  }
}
