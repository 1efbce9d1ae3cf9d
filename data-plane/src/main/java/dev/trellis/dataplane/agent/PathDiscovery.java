package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.dataplane.stun.StunClient;
import dev.trellis.dataplane.wireguard.DiscoHandler;
import dev.trellis.proto.disco.DiscoMessage;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Finds and keeps direct UDP paths to peers; everything else goes through the relay. Every peer
 * starts on the relay. We ping each of its candidate endpoints from the WireGuard socket and, while
 * no direct path works, send it a CallMeMaybe through the relay so it pings us back at the same
 * moment (both NATs and stateful firewalls then see outbound traffic first). A pong received
 * directly moves the peer's traffic to that address; when pongs stop for {@link #DIRECT_TIMEOUT_NANOS}
 * it falls back to the relay and probing goes on, so it upgrades again when it can.
 * All state lives on one thread.
 */
public final class PathDiscovery implements DiscoHandler, AutoCloseable {
    static final long PROBE_INTERVAL_NO_PATH_NANOS = TimeUnit.SECONDS.toNanos(2);
    /** Frequent enough to notice a lost path within 5 s; one small datagram per peer per second. */
    static final long PROBE_INTERVAL_DIRECT_NANOS = TimeUnit.SECONDS.toNanos(1);
    /** Without a pong for this long the direct path is considered gone: 3 missed probes. */
    static final long DIRECT_TIMEOUT_NANOS = TimeUnit.MILLISECONDS.toNanos(3 * 1000 + 500);
    static final long CALL_ME_MAYBE_INTERVAL_NANOS = TimeUnit.SECONDS.toNanos(5);
    static final long TICK_MILLIS = 250;
    private static final Logger LOG = Logger.getLogger(PathDiscovery.class.getName());

    /** Sends a disco message to a peer (by node key) through the relay; false if there is no relay. */
    public interface RelaySender {
        boolean send(byte[] peerKey, byte[] message);
    }

    /** Where a peer's traffic goes now. */
    public record PathStatus(boolean direct, InetSocketAddress endpoint, long lastRttNanos) {}

    /** One answered ping for `trellis ping`: how it went and how long it took. */
    public record PingResult(String path, long rttNanos) {}

    private final Device device;
    private final byte[] ownPrivate;
    private final byte[] ownPublic;
    private final Supplier<List<String>> ownEndpoints;
    private final ScheduledExecutorService loop;
    private volatile RelaySender relay;
    private final Map<String, PeerPaths> peers = new HashMap<>();
    /** STUN transactions sent from the device's socket, waiting for their response. */
    private final Map<StunClient.Transaction, CompletableFuture<InetSocketAddress>> stunPending = new java.util.concurrent.ConcurrentHashMap<>();

    private static final class PeerPaths {
        final byte[] key;
        final byte[] sharedKey;
        List<InetSocketAddress> candidates = List.of();
        InetSocketAddress direct;
        long lastDirectPong;
        long lastProbe = Long.MIN_VALUE / 2;
        long lastCallMeMaybe = Long.MIN_VALUE / 2;
        long lastRtt = -1;
        final Map<String, Pending> pending = new HashMap<>();

        PeerPaths(byte[] key, byte[] sharedKey) {
            this.key = key;
            this.sharedKey = sharedKey;
        }
    }

    private record Pending(InetSocketAddress to, long sentNanos, CompletableFuture<PingResult> waiter) {}

    public PathDiscovery(Device device, byte[] nodePrivateKey, Supplier<List<String>> ownEndpoints) {
        this.device = device;
        this.ownPrivate = nodePrivateKey.clone();
        this.ownPublic = dev.trellis.proto.wireguard.Curve25519.publicKey(nodePrivateKey);
        this.ownEndpoints = ownEndpoints;
        this.loop = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "path-discovery");
            t.setDaemon(true);
            return t;
        });
        loop.scheduleWithFixedDelay(this::tick, TICK_MILLIS, TICK_MILLIS, TimeUnit.MILLISECONDS);
    }

    public void setRelay(RelaySender sender) {
        relay = sender;
        if (sender != null) {
            // Peers from a map that arrived before the relay connected could not be moved onto it then.
            loop.execute(() -> peers.values().stream().filter(p -> p.direct == null).forEach(this::useRelay));
        }
    }

    /** The peers and their candidate endpoints, from the network map (keys in base64). */
    public void setPeers(Map<String, List<InetSocketAddress>> candidates) {
        loop.execute(() -> {
            peers.keySet().removeIf(k -> !candidates.containsKey(k));
            candidates.forEach((k, endpoints) -> {
                PeerPaths p = peers.get(k);
                if (p == null) {
                    byte[] key = Base64.getDecoder().decode(k);
                    byte[] shared = DiscoMessage.sharedKey(ownPrivate, key);
                    if (shared == null) {
                        return;
                    }
                    p = new PeerPaths(key, shared);
                    peers.put(k, p);
                    useRelay(p); // every peer starts on the relay
                }
                p.candidates = List.copyOf(endpoints);
            });
        });
    }

    public CompletableFuture<Map<String, PathStatus>> statuses() {
        CompletableFuture<Map<String, PathStatus>> out = new CompletableFuture<>();
        loop.execute(() -> {
            Map<String, PathStatus> m = new HashMap<>();
            peers.forEach((k, p) -> m.put(k, new PathStatus(p.direct != null, p.direct, p.lastRtt)));
            out.complete(m);
        });
        return out;
    }

    /** One disco ping over the peer's current path, for `trellis ping`. */
    public CompletableFuture<PingResult> ping(String peerKey) {
        CompletableFuture<PingResult> result = new CompletableFuture<>();
        loop.execute(() -> {
            PeerPaths p = peers.get(peerKey);
            if (p == null) {
                result.completeExceptionally(new IllegalArgumentException("no such peer"));
                return;
            }
            byte[] txid = DiscoMessage.newTxid();
            byte[] sealed = DiscoMessage.seal(new DiscoMessage.Ping(txid), ownPublic, p.sharedKey);
            p.pending.put(HexFormat.of().formatHex(txid), new Pending(p.direct, System.nanoTime(), result));
            if (p.direct != null) {
                device.sendRawDatagram(sealed, p.direct);
            } else if (!sendViaRelay(p, sealed)) {
                result.completeExceptionally(new IllegalStateException("no direct path and no relay"));
            }
        });
        return result.orTimeout(5, TimeUnit.SECONDS);
    }

    // ---- inbound -----------------------------------------------------------------------------

    @Override
    public void onDisco(byte[] datagram, InetSocketAddress source) {
        if (DiscoMessage.looksLikeDisco(datagram, datagram.length)) {
            loop.execute(() -> receive(datagram, source));
        } else if (!stunPending.isEmpty()) {
            loop.execute(() -> {
                for (var t : List.copyOf(stunPending.entrySet())) {
                    if (t.getKey().accept(datagram, 0, datagram.length) instanceof StunClient.Outcome.Mapped m) {
                        stunPending.remove(t.getKey());
                        t.getValue().complete(m.address());
                    }
                }
            });
        }
    }

    /**
     * This node's reflexive address as {@code stunServer} sees the WireGuard socket (the address a
     * peer behind another NAT must aim at), asked from that very socket: up to three Binding requests
     * 500 ms apart; fails after {@code timeout}.
     */
    public CompletableFuture<InetSocketAddress> reflexiveAddress(InetSocketAddress stunServer, Duration timeout) {
        StunClient.Transaction t = new StunClient.Transaction();
        CompletableFuture<InetSocketAddress> result = new CompletableFuture<>();
        stunPending.put(t, result);
        byte[] request = t.request();
        for (int i = 0; i < 3; i++) {
            loop.schedule(() -> {
                if (!result.isDone()) {
                    device.sendRawDatagram(request, stunServer);
                }
            }, i * 500L, TimeUnit.MILLISECONDS);
        }
        return result.orTimeout(timeout.toMillis(), TimeUnit.MILLISECONDS).whenComplete((a, e) -> stunPending.remove(t));
    }

    /** A disco message that came through the relay from {@code senderKey}. */
    public void onRelayedDisco(byte[] senderKey, byte[] datagram) {
        loop.execute(() -> receive(datagram, null));
    }

    private void receive(byte[] datagram, InetSocketAddress source) {
        byte[] sender = DiscoMessage.senderOf(datagram, datagram.length);
        PeerPaths p = sender == null ? null : peers.get(Base64.getEncoder().encodeToString(sender));
        DiscoMessage.Opened opened = p == null ? null : DiscoMessage.open(datagram, datagram.length, p.sharedKey);
        if (opened == null) {
            return;
        }
        long now = System.nanoTime();
        switch (opened.message()) {
            case DiscoMessage.Ping ping -> {
                String seen = source == null ? "relay" : PeerReconciler.formatEndpoint(source.getAddress(), source.getPort());
                byte[] pong = DiscoMessage.seal(new DiscoMessage.Pong(ping.txid(), seen), ownPublic, p.sharedKey);
                if (source != null) {
                    device.sendRawDatagram(pong, source);
                } else {
                    sendViaRelay(p, pong);
                }
            }
            case DiscoMessage.Pong pong -> {
                Pending sent = p.pending.remove(HexFormat.of().formatHex(pong.txid()));
                if (sent == null) {
                    return;
                }
                long rtt = now - sent.sentNanos();
                p.lastRtt = rtt;
                if (source != null) {
                    p.lastDirectPong = now;
                    if (!source.equals(p.direct)) {
                        p.direct = source;
                        try {
                            device.setPeerEndpoint(p.key, source);
                            device.setPeerUsesRelay(p.key, false);
                        } catch (IllegalArgumentException notYetAPeer) {
                            return; // the map delta adding it is still on its way
                        }
                        LOG.info("direct path to " + Base64.getEncoder().encodeToString(p.key) + " via " + source);
                    }
                }
                if (sent.waiter() != null) {
                    sent.waiter().complete(new PingResult(source == null ? "relay" : PeerReconciler.formatEndpoint(source.getAddress(), source.getPort()), rtt));
                }
            }
            case DiscoMessage.CallMeMaybe call -> {
                // Ping every endpoint the peer named right now, so our outbound opens the way.
                for (String endpoint : call.endpoints()) {
                    InetSocketAddress address = parse(endpoint);
                    if (address != null) {
                        probe(p, address, now);
                    }
                }
            }
        }
    }

    // ---- probing -----------------------------------------------------------------------------

    private void tick() {
        try {
            long now = System.nanoTime();
            for (PeerPaths p : peers.values()) {
                p.pending.values().removeIf(x -> now - x.sentNanos() > TimeUnit.SECONDS.toNanos(10));
                if (p.direct != null && now - p.lastDirectPong > DIRECT_TIMEOUT_NANOS) {
                    LOG.info("direct path to " + Base64.getEncoder().encodeToString(p.key) + " via " + p.direct + " stopped; using the relay");
                    p.direct = null;
                    useRelay(p);
                }
                long interval = p.direct != null ? PROBE_INTERVAL_DIRECT_NANOS : PROBE_INTERVAL_NO_PATH_NANOS;
                if (now - p.lastProbe >= interval) {
                    p.lastProbe = now;
                    List<InetSocketAddress> targets = new ArrayList<>(p.candidates);
                    if (p.direct != null && !targets.contains(p.direct)) {
                        targets.add(p.direct);
                    }
                    for (InetSocketAddress target : targets) {
                        probe(p, target, now);
                    }
                }
                if (p.direct == null && now - p.lastCallMeMaybe >= CALL_ME_MAYBE_INTERVAL_NANOS) {
                    p.lastCallMeMaybe = now;
                    List<String> ours = ownEndpoints.get();
                    if (!ours.isEmpty()) {
                        sendViaRelay(p, DiscoMessage.seal(new DiscoMessage.CallMeMaybe(ours), ownPublic, p.sharedKey));
                    }
                }
            }
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "path discovery tick failed", e);
        }
    }

    private void probe(PeerPaths p, InetSocketAddress target, long now) {
        byte[] txid = DiscoMessage.newTxid();
        p.pending.put(HexFormat.of().formatHex(txid), new Pending(target, now, null));
        device.sendRawDatagram(DiscoMessage.seal(new DiscoMessage.Ping(txid), ownPublic, p.sharedKey), target);
    }

    private boolean sendViaRelay(PeerPaths p, byte[] message) {
        RelaySender r = relay;
        return r != null && r.send(p.key, message);
    }

    private void useRelay(PeerPaths p) {
        if (relay != null) {
            try {
                device.setPeerUsesRelay(p.key, true);
            } catch (IllegalArgumentException notYetAPeer) {
                // added to the device later; a new peer has no direct path anyway
            }
        }
    }

    private static InetSocketAddress parse(String endpoint) {
        try {
            return PeerReconciler.parseEndpoint(endpoint);
        } catch (RuntimeException e) {
            return null;
        }
    }

    @Override
    public void close() {
        loop.shutdownNow();
    }
}
