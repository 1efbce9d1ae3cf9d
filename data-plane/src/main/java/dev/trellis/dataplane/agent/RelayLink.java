package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.relay.RelayClient;
import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.proto.control.ControlMessage.RelayInfo;
import dev.trellis.proto.disco.DiscoMessage;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.logging.Logger;

/**
 * The agent's relay connections, kept up while the node is logged in. From the relay map it
 * measures each region (the best of three TCP connects to the relay's host: what a campus that
 * only passes TCP lets through), homes the node on the fastest (or on the region named by
 * {@code TRELLIS_HOME_RELAY} while that is reachable), and tells the control plane (its
 * peers send to it there). Within the home region it takes the relay holding the fewest nodes
 * (ties broken by a hash of node and relay, so nodes enrolled together spread out), and moves
 * when that relay leaves the map. When the home relay is part of the cluster's mesh, packets for
 * every peer on a meshed relay go through the home connection (the relays forward between
 * themselves); a peer homed on a relay of its own is reached through a connection to that region,
 * opened for as long as such a peer exists. Every connection reconnects with backoff; while one is up it
 * carries the WireGuard device's packets for peers without a direct path and path discovery's
 * messages.
 */
final class RelayLink implements AutoCloseable {
    static final long MAX_BACKOFF_MILLIS = 15_000;
    /** Regions are measured again this often; the home moves only to a clearly faster one. */
    static final long REPROBE_MILLIS = TimeUnit.MINUTES.toMillis(5);
    static final double SWITCH_FACTOR = 0.7;
    static final int PROBE_CONNECT_MILLIS = 2_000;
    static final java.time.Duration LOAD_TIMEOUT = java.time.Duration.ofSeconds(2);
    /** A connection silent this long is pinged; silent this long and it is taken for dead (cut off without a reset). */
    static final long SILENT_PING_SECONDS = 5;
    static final long SILENT_DEAD_SECONDS = 15;
    /** The region a login server without a relay map stands for. */
    static final String DEFAULT_REGION = "default";
    private static final Logger LOG = Logger.getLogger(RelayLink.class.getName());

    /** A region's latency as last measured; null millis when it could not be reached. */
    record RegionLatency(String region, String url, Double millis, String error) {}

    private final Device device;
    private final PathDiscovery discovery;
    private final byte[] nodePrivateKey;
    private final byte[] nodePublicKey;
    private final Consumer<String> onHomeChanged;
    /** {@code TRELLIS_HOME_RELAY}: the region to home on whenever it is reachable (an admin's pin, e.g. the robot's building). */
    private final String preferred = blankToNull(System.getenv("TRELLIS_HOME_RELAY"));
    private final ScheduledExecutorService loop = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "relay-link");
        t.setDaemon(true);
        return t;
    });

    // loop-thread state
    private List<RelayInfo> relays = List.of();
    private final Map<String, Double> latency = new HashMap<>();
    /** Relay URL → nodes it held when last asked (home selection within a region). */
    private final Map<String, Integer> loads = new HashMap<>();
    /** Relay URLs that answered the last probe. */
    private final java.util.Set<String> reachable = new java.util.HashSet<>();
    /** The relay used in each region, where a choice was made (the home region's least-loaded one). */
    private final Map<String, RelayInfo> chosen = new HashMap<>();
    private String home;
    private final Map<String, Connection> connections = new HashMap<>();
    /** Peers (base64 node key) and the region each is homed on. */
    private Map<String, String> peerRegions = Map.of();
    private long probeGeneration;

    /** Read on the packet path: peer key → the client its packets go through. Rebuilt on every change. */
    private volatile Map<ByteBuffer, RelayClient> routes = Map.of();
    private volatile RelayClient homeClient;
    private volatile String homeRegion;
    private volatile Map<ByteBuffer, String> routeRegions = Map.of();

    RelayLink(Device device, PathDiscovery discovery, byte[] nodePrivateKey, Consumer<String> onHomeChanged) {
        this.device = device;
        this.discovery = discovery;
        this.nodePrivateKey = nodePrivateKey.clone();
        this.nodePublicKey = dev.trellis.proto.wireguard.Curve25519.publicKey(nodePrivateKey);
        this.onHomeChanged = onHomeChanged;
        loop.scheduleWithFixedDelay(() -> {
            if (!relays.isEmpty()) {
                probeAndChooseHome();
            }
        }, REPROBE_MILLIS, REPROBE_MILLIS, TimeUnit.MILLISECONDS);
        loop.scheduleWithFixedDelay(this::checkSilence, SILENT_PING_SECONDS, SILENT_PING_SECONDS, TimeUnit.SECONDS);
    }

    /** Pings quiet connections and drops ones that stayed silent, so a relay that vanished is noticed within seconds. */
    private void checkSilence() {
        for (Connection c : connections.values()) {
            RelayClient client = c.client;
            if (client == null || !client.isOpen()) {
                continue;
            }
            long silent = client.silentNanos();
            if (silent > TimeUnit.SECONDS.toNanos(SILENT_DEAD_SECONDS)) {
                LOG.warning("relay region " + c.info.region() + " silent for " + TimeUnit.NANOSECONDS.toSeconds(silent) + " s: reconnecting");
                client.close();
            } else if (silent > TimeUnit.SECONDS.toNanos(SILENT_PING_SECONDS)) {
                client.ping();
            }
        }
    }

    /**
     * Use {@code map} (from the network map; empty: the login server's own relay as region
     * "default"). Idempotent for the same map.
     */
    void setRelayMap(List<RelayInfo> map, URI loginServer) {
        List<RelayInfo> effective = map == null || map.isEmpty()
                ? List.of(new RelayInfo(DEFAULT_REGION, loginServer.toString(), null, null))
                : map.stream().map(r -> r.url() == null || r.url().isBlank()
                        ? new RelayInfo(r.region(), loginServer.toString(), r.key(), r.stunPort()) : r).toList();
        loop.execute(() -> {
            if (effective.equals(relays)) {
                return;
            }
            relays = effective;
            chosen.values().removeIf(r -> !relays.contains(r));
            for (String region : List.copyOf(connections.keySet())) {
                if (relay(region) == null) {
                    connections.remove(region).close();
                }
            }
            if (home != null && !chosen.containsKey(home)) {
                home = null; // its relay left the map: choose again
                homeRegion = null;
                rebuildRoutes();
            }
            probeAndChooseHome();
        });
    }

    /** The peers and their home regions (null or unknown region: reached through our home). */
    void setPeerRegions(Map<String, String> regions) {
        Map<String, String> copy = new HashMap<>();
        regions.forEach((k, v) -> {
            if (v != null) {
                copy.put(k, v);
            }
        });
        loop.execute(() -> {
            peerRegions = copy;
            reconcileConnections();
        });
    }

    void disconnect() {
        loop.execute(() -> {
            relays = List.of();
            home = null;
            probeGeneration++;
            connections.values().forEach(Connection::close);
            connections.clear();
            rebuildRoutes();
        });
    }

    String homeRegion() {
        return homeRegion;
    }

    /** The region packets to {@code peerKey} go through now, or null when no relay connection is up. */
    String regionFor(byte[] peerKey) {
        String r = routeRegions.get(ByteBuffer.wrap(peerKey));
        if (r != null) {
            return r;
        }
        RelayClient h = homeClient;
        return h != null && h.isOpen() ? homeRegion : null;
    }

    /** Round trip to the home relay over the live connection; fails when there is none. */
    CompletableFuture<Long> pingRttNanos() {
        RelayClient c = homeClient;
        return c == null || !c.isOpen()
                ? CompletableFuture.failedFuture(new IllegalStateException("not connected to a relay"))
                : c.pingRttNanos();
    }

    boolean connected() {
        RelayClient c = homeClient;
        return c != null && c.isOpen();
    }

    /** Measures every region now (for netcheck); does not move the home. */
    CompletableFuture<List<RegionLatency>> measure() {
        CompletableFuture<List<RelayInfo>> map = new CompletableFuture<>();
        loop.execute(() -> map.complete(relays));
        return map.thenCompose(list -> CompletableFuture.supplyAsync(() -> {
            List<RegionLatency> out = new ArrayList<>();
            for (RelayInfo r : list) {
                try {
                    out.add(new RegionLatency(r.region(), r.url(), probe(r) / 1e6, null));
                } catch (IOException | IllegalArgumentException e) {
                    out.add(new RegionLatency(r.region(), r.url(), null, e.getMessage()));
                }
            }
            return out;
        }, task -> Thread.ofVirtual().start(task)));
    }

    // ---- home selection (loop thread) -------------------------------------------------------

    /** The relay used for {@code region}: the one chosen there, or its first in the map; null if the region is not in the map. */
    private RelayInfo relay(String region) {
        RelayInfo c = chosen.get(region);
        if (c != null) {
            return c;
        }
        for (RelayInfo r : relays) {
            if (r.region().equals(region)) {
                return r;
            }
        }
        return null;
    }

    /** Whether packets for a peer homed in {@code region} can go through our home relay (both in the mesh). */
    private boolean throughHome(String region) {
        RelayInfo h = home == null ? null : relay(home);
        return h != null && h.meshed() && relays.stream().anyMatch(r -> r.region().equals(region) && r.meshed());
    }

    /**
     * Of a region's relays, the one holding the fewest nodes (unknown load counts as full); equal
     * loads go by a hash of this node's key and the relay URL, so simultaneous arrivals spread.
     */
    static RelayInfo leastLoaded(List<RelayInfo> inRegion, Map<String, Integer> loads, byte[] nodePublicKey) {
        return inRegion.stream().min(java.util.Comparator
                        .<RelayInfo>comparingInt(r -> loads.getOrDefault(r.url(), Integer.MAX_VALUE))
                        .thenComparingLong(r -> spread(nodePublicKey, r.url())))
                .orElse(null);
    }

    private static long spread(byte[] nodePublicKey, String url) {
        byte[] digest = dev.trellis.proto.wireguard.NoiseHash.hash(nodePublicKey, url.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        return java.nio.ByteBuffer.wrap(digest).getLong();
    }

    /** {@code GET <relay>/relay/load}: how many nodes the relay holds; null when it cannot say. */
    static Integer load(RelayInfo relay) {
        try {
            var response = dev.trellis.dataplane.agent.ControlClient.newHttpClient().send(
                    java.net.http.HttpRequest.newBuilder(URI.create(relay.url().replaceAll("/+$", "") + "/relay/load"))
                            .timeout(LOAD_TIMEOUT).GET().build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() != 200) {
                return null;
            }
            var json = dev.trellis.proto.control.ControlJson.MAPPER.readTree(response.body());
            return json.has("connectedNodes") ? json.get("connectedNodes").asInt() : null;
        } catch (IOException | IllegalArgumentException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    private void probeAndChooseHome() {
        long gen = ++probeGeneration;
        List<RelayInfo> list = relays;
        if (home == null && list.size() == 1) {
            // Nothing to choose between: connect at once, measure for the record.
            chooseHome(list.getFirst().region());
        }
        Thread.ofVirtual().start(() -> {
            // A region's latency is that of its nearest relay.
            Map<String, Double> measured = new LinkedHashMap<>();
            Map<String, Integer> measuredLoads = new HashMap<>();
            java.util.Set<String> answered = new java.util.HashSet<>();
            for (RelayInfo r : list) {
                try {
                    measured.merge(r.region(), probe(r) / 1e6, Math::min);
                    answered.add(r.url());
                } catch (IOException | IllegalArgumentException e) {
                    LOG.info("relay " + r.region() + " (" + r.url() + ") unreachable: " + e.getMessage());
                    continue;
                }
                if (list.stream().filter(o -> o.region().equals(r.region())).count() > 1) {
                    Integer n = load(r);
                    if (n != null) {
                        measuredLoads.put(r.url(), n);
                    }
                }
            }
            loop.execute(() -> {
                if (gen != probeGeneration) {
                    return;
                }
                latency.clear();
                latency.putAll(measured);
                loads.clear();
                loads.putAll(measuredLoads);
                reachable.clear();
                reachable.addAll(answered);
                String best = preferred != null && measured.containsKey(preferred) ? preferred
                        : measured.entrySet().stream().min(Map.Entry.comparingByValue()).map(Map.Entry::getKey).orElse(null);
                if (best == null) {
                    if (home == null && !relays.isEmpty()) {
                        chooseHome(relays.getFirst().region()); // unmeasurable: try it anyway, with backoff
                    }
                    return;
                }
                RelayInfo homeRelay = home == null ? null : chosen.get(home);
                if (homeRelay != null && best.equals(home) && !reachable.contains(homeRelay.url())) {
                    home = null; // the home region is fine but our relay there is not: take another of its relays
                }
                Double current = home == null ? null : measured.get(home);
                if (home == null || relay(home) == null || current == null || best.equals(preferred)
                        || measured.get(best) < current * SWITCH_FACTOR) {
                    chooseHome(best);
                }
            });
        });
    }

    private void chooseHome(String region) {
        if (region.equals(home)) {
            return;
        }
        List<RelayInfo> inRegion = relays.stream().filter(r -> r.region().equals(region)).toList();
        if (inRegion.stream().anyMatch(r -> reachable.contains(r.url()))) {
            inRegion = inRegion.stream().filter(r -> reachable.contains(r.url())).toList();
        }
        RelayInfo pick = inRegion.size() == 1 ? inRegion.getFirst() : leastLoaded(inRegion, loads, nodePublicKey);
        if (pick != null) {
            chosen.put(region, pick);
        }
        LOG.info("home relay region: " + region + (latency.containsKey(region) ? String.format(" (%.1f ms)", latency.get(region)) : "")
                + (inRegion.size() > 1 && pick != null ? ", relay " + pick.url() + " (" + loads.getOrDefault(pick.url(), -1) + " nodes)" : ""));
        home = region;
        homeRegion = region;
        reconcileConnections();
        onHomeChanged.accept(region);
    }

    /** Keeps a connection to the home region and to every region a peer lives in; closes the rest. */
    private void reconcileConnections() {
        Map<String, Boolean> wanted = new HashMap<>();
        if (home != null && relay(home) != null) {
            wanted.put(home, true);
        }
        for (String region : peerRegions.values()) {
            if (relay(region) != null && !throughHome(region)) {
                wanted.putIfAbsent(region, false);
            }
        }
        for (String region : List.copyOf(connections.keySet())) {
            if (!wanted.containsKey(region)) {
                connections.remove(region).close();
            }
        }
        for (String region : wanted.keySet()) {
            Connection c = connections.get(region);
            RelayInfo info = relay(region);
            if (c == null || !c.info.equals(info)) {
                if (c != null) {
                    c.close();
                }
                c = new Connection(info);
                connections.put(region, c);
                c.dial();
            }
        }
        rebuildRoutes();
    }

    private void rebuildRoutes() {
        Connection h = home == null ? null : connections.get(home);
        RelayClient hc = h == null ? null : h.client;
        Map<ByteBuffer, RelayClient> r = new HashMap<>();
        Map<ByteBuffer, String> names = new HashMap<>();
        peerRegions.forEach((key, region) -> {
            Connection c = connections.get(region);
            if (c != null && c.client != null && !region.equals(home) && !throughHome(region)) {
                ByteBuffer k = ByteBuffer.wrap(Base64.getDecoder().decode(key));
                r.put(k, c.client);
                names.put(k, region);
            }
        });
        routes = r;
        routeRegions = names;
        homeClient = hc;
        boolean any = hc != null || !r.isEmpty();
        if (!any) {
            device.setRelayTransport(null);
            discovery.setRelay(null);
            return;
        }
        device.setRelayTransport((key, message, length) -> {
            RelayClient c = clientFor(key);
            return c != null && c.send(key, message, 0, length);
        });
        discovery.setRelay((key, message) -> {
            RelayClient c = clientFor(key);
            return c != null && c.send(key, message, 0, message.length);
        });
    }

    private RelayClient clientFor(byte[] peerKey) {
        RelayClient c = routes.get(ByteBuffer.wrap(peerKey));
        return c != null && c.isOpen() ? c : homeClient;
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s.strip();
    }

    /** The best of three TCP connects to the relay's host and port, in nanoseconds. */
    static long probe(RelayInfo relay) throws IOException {
        URI u = URI.create(relay.url());
        if (u.getHost() == null) {
            throw new IllegalArgumentException("relay URL without a host: " + relay.url());
        }
        int port = u.getPort() != -1 ? u.getPort() : "https".equals(u.getScheme()) ? 443 : 80;
        long best = Long.MAX_VALUE;
        IOException last = null;
        for (int i = 0; i < 3; i++) {
            try (Socket s = new Socket()) {
                long t = System.nanoTime();
                s.connect(new InetSocketAddress(u.getHost(), port), PROBE_CONNECT_MILLIS);
                best = Math.min(best, System.nanoTime() - t);
            } catch (IOException e) {
                last = e;
            }
        }
        if (best == Long.MAX_VALUE) {
            throw last != null ? last : new IOException("no connection");
        }
        return best;
    }

    /** One region's connection: dials, redials with backoff, and feeds what arrives to the device and discovery. */
    private final class Connection {
        final RelayInfo info;
        RelayClient client;
        int attempt;
        boolean closed;
        long restartDelayMillis;
        long restartUntilNanos = System.nanoTime();

        Connection(RelayInfo info) {
            this.info = info;
        }

        void dial() {
            if (closed) {
                return;
            }
            byte[] expectedKey = info.key() == null ? null : Base64.getDecoder().decode(info.key());
            RelayClient.connect(dev.trellis.dataplane.agent.ControlClient.newHttpClient(), URI.create(info.url()), nodePrivateKey,
                    expectedKey, new RelayClient.Listener() {
                        @Override
                        public void onPacket(byte[] srcKey, byte[] packet, int len) {
                            if (DiscoMessage.looksLikeDisco(packet, len)) {
                                discovery.onRelayedDisco(srcKey.clone(), Arrays.copyOf(packet, len));
                            } else {
                                device.receiveFromRelay(packet, len);
                            }
                        }

                        @Override
                        public void onRestarting(long reconnectInMillis, long tryForMillis) {
                            loop.execute(() -> {
                                attempt = 0;
                                restartDelayMillis = Math.max(100, reconnectInMillis);
                                restartUntilNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(tryForMillis);
                            });
                        }

                        @Override
                        public void onHealth(String problem) {
                            if (problem.isEmpty()) {
                                LOG.info("relay region " + info.region() + " is healthy again");
                            } else {
                                LOG.warning("relay region " + info.region() + ": " + problem);
                            }
                        }

                        @Override
                        public void onClosed(String reason) {
                            loop.execute(() -> lost(reason));
                        }
                    }).whenComplete((c, failure) -> loop.execute(() -> {
                        if (closed) {
                            if (c != null) {
                                c.close();
                            }
                            return;
                        }
                        if (failure != null) {
                            lost(failure.getMessage());
                            return;
                        }
                        attempt = 0;
                        client = c;
                        rebuildRoutes();
                        LOG.info("connected to relay region " + info.region() + " at " + info.url() + " (" + c.transport() + ")");
                    }));
        }

        private void lost(String reason) {
            if (closed) {
                return;
            }
            client = null;
            rebuildRoutes();
            boolean announcedRestart = System.nanoTime() < restartUntilNanos;
            if (info.region().equals(home) && relays.size() > 1 && (attempt >= 2 || !announcedRestart)) {
                probeAndChooseHome(); // the home went away (or keeps failing after a restart): a reachable relay may take over
            }
            // A relay that said it is restarting is retried at the pace it asked for while it said to keep trying.
            long backoff = System.nanoTime() < restartUntilNanos ? restartDelayMillis
                    : Math.min(MAX_BACKOFF_MILLIS, 500L << Math.min(attempt++, 5));
            backoff += ThreadLocalRandom.current().nextLong(backoff / 5 + 1);
            LOG.warning("relay region " + info.region() + ": connection lost (" + reason + "); retrying in " + backoff + " ms");
            loop.schedule(this::dial, backoff, TimeUnit.MILLISECONDS);
        }

        void close() {
            closed = true;
            if (client != null) {
                client.close();
                client = null;
            }
        }

        @Override
        public String toString() {
            return Objects.toString(info);
        }
    }

    @Override
    public void close() {
        loop.execute(() -> {
            probeGeneration++;
            connections.values().forEach(Connection::close);
            connections.clear();
            homeClient = null;
            routes = Map.of();
        });
        loop.shutdown();
    }
}
