package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.control.ControlMessage.NodeInfo;
import java.io.IOException;
import java.net.InetAddress;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The node agent: logs in to the coordination server over the control channel, keeps the
 * WireGuard device's peers and the interface's addresses and routes equal to the network map,
 * reports the host's endpoints, and reconnects with backoff when the server goes away. The device
 * and its peers keep running while the server is unreachable: known peers stay reachable.
 *
 * <p>All state lives on one loop thread; control-channel callbacks and local API calls are queued
 * onto it, so there are no locks and messages are applied in the order they arrived.
 */
public final class Agent implements AgentControl, AutoCloseable {
    static final long LOGIN_TIMEOUT_SECONDS = 30;
    static final long PING_INTERVAL_SECONDS = 20;
    /** Silence longer than this (more than two pings unanswered) means a dead connection. */
    static final long SILENCE_LIMIT_SECONDS = 50;
    static final long ENDPOINT_CHECK_SECONDS = 5;
    static final long MAX_BACKOFF_MILLIS = 30_000;
    private static final Logger LOG = Logger.getLogger(Agent.class.getName());

    /** Opens a control connection; {@link ControlClient#connect} in production. */
    public interface Connector {
        CompletableFuture<ControlClient> connect(URI loginServer, byte[] machinePrivateKey, ControlClient.Listener listener);
    }

    private final AgentState state;
    private final Device device;
    private final String interfaceName;
    private final NetworkConfigurator network;
    private final Connector connector;
    private final Supplier<List<String>> endpointScanner;
    private final PeerReconciler peers;
    private final ScheduledExecutorService loop;
    /** Null in tests that run without relay or path discovery. */
    private final PathDiscovery discovery;
    private final RelayLink relay;

    // ---- loop-thread state ----
    private Session current;
    private NodeInfo self;
    private ControlMessage.NetworkInfo networkInfo;
    private String lastError;
    private List<String> reportedEndpoints = List.of();
    /** The WireGuard socket's STUN-reflexive address ("ip:port"), null until (or unless) STUN answers. */
    private volatile String reflexive;
    /** The home relay region last told to the server. */
    private String reportedHome;
    private int backoffAttempt;
    private ScheduledFuture<?> reconnect;
    private long pingId;

    public Agent(AgentState state, Device device, String interfaceName, NetworkConfigurator network,
                 Connector connector, Supplier<List<String>> endpointScanner) {
        this(state, device, interfaceName, network, connector, endpointScanner, null);
    }

    /** With path discovery: peers are reached through the relay until a direct path is found. */
    public Agent(AgentState state, Device device, String interfaceName, NetworkConfigurator network,
                 Connector connector, Supplier<List<String>> endpointScanner, PathDiscovery discovery) {
        this.discovery = discovery;
        this.relay = discovery == null ? null : new RelayLink(device, discovery, state.nodePrivateKey(),
                home -> onHomeRelayChanged());
        this.state = state;
        this.device = device;
        this.interfaceName = interfaceName;
        this.network = network;
        this.connector = connector;
        this.endpointScanner = endpointScanner;
        this.peers = new PeerReconciler(device, address -> HostEndpoints.hasFamily(interfaceName, address));
        this.loop = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "trellis-agent");
            t.setDaemon(true);
            return t;
        });
    }

    /** Starts the timers and, if the node was logged in and up when it stopped, resumes. */
    public void start() {
        loop.scheduleWithFixedDelay(guarded(this::checkEndpoints), ENDPOINT_CHECK_SECONDS, ENDPOINT_CHECK_SECONDS, TimeUnit.SECONDS);
        loop.scheduleWithFixedDelay(guarded(this::refreshReflexive), 1, REFLEXIVE_CHECK_SECONDS, TimeUnit.SECONDS);
        loop.scheduleWithFixedDelay(guarded(this::keepalive), PING_INTERVAL_SECONDS, PING_INTERVAL_SECONDS, TimeUnit.SECONDS);
        loop.execute(guarded(() -> {
            AgentState.Saved saved = state.saved();
            if (saved.loggedIn() && saved.wantRunning() && saved.loginServer() != null) {
                LOG.info("resuming session with " + saved.loginServer());
                resume();
            }
        }));
    }

    private Runnable guarded(Runnable task) {
        return () -> {
            try {
                task.run();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "agent task failed", e);
            }
        };
    }

    // ---- AgentControl ----------------------------------------------------------------------

    @Override
    public CompletableFuture<Outcome> up(String loginServer, String authKey, String hostname) {
        CompletableFuture<Outcome> result = new CompletableFuture<>();
        submit(result, () -> {
            AgentState.Saved saved = state.saved();
            String server = blankToNull(loginServer) != null ? loginServer.strip() : saved.loginServer();
            if (server == null) {
                result.complete(Outcome.failure("no login server known: pass --login-server URL"));
                return;
            }
            URI uri;
            try {
                uri = ControlClient.normalize(URI.create(server));
            } catch (IllegalArgumentException e) {
                result.complete(Outcome.failure("login server must be an http:// or https:// URL, got '" + server + "'"));
                return;
            }
            String host = blankToNull(hostname) != null ? hostname.strip()
                    : saved.hostname() != null ? saved.hostname() : machineHostname();
            String key = blankToNull(authKey);
            Session s = current;
            if (s != null && s.loggedIn && key == null && s.server.equals(uri) && s.hostname.equals(host) && saved.wantRunning()) {
                result.complete(Outcome.success(self));
                return;
            }
            cancelReconnect();
            endSession();
            startSession(uri, key, host, result, false);
        });
        return result;
    }

    @Override
    public CompletableFuture<Outcome> down() {
        CompletableFuture<Outcome> result = new CompletableFuture<>();
        submit(result, () -> {
            cancelReconnect();
            endSession();
            AgentState.Saved saved = state.saved();
            save(new AgentState.Saved(saved.loginServer(), saved.hostname(), saved.loggedIn(), false));
            unconfigure();
            result.complete(Outcome.success(null));
        });
        return result;
    }

    @Override
    public CompletableFuture<Outcome> logout() {
        CompletableFuture<Outcome> result = new CompletableFuture<>();
        submit(result, () -> {
            cancelReconnect();
            AgentState.Saved saved = state.saved();
            Session s = current;
            save(new AgentState.Saved(saved.loginServer(), saved.hostname(), false, false));
            unconfigure();
            self = null;
            if (s != null && s.loggedIn) {
                current = null;
                s.cancelTimers();
                tellServerLogout(s, result);
                return;
            }
            endSession();
            if (!saved.loggedIn() || saved.loginServer() == null) {
                result.complete(Outcome.success(null));
                return;
            }
            // Not connected right now: connect just to tell the server, so it forgets this node.
            CompletableFuture<Outcome> told = new CompletableFuture<>();
            told.whenComplete((o, e) -> result.complete(o != null && o.ok() ? o
                    : new Outcome(true, "logged out here, but could not tell the server: " + (o != null ? o.error() : e), null)));
            startSession(ControlClient.normalize(URI.create(saved.loginServer())), null,
                    saved.hostname() == null ? machineHostname() : saved.hostname(), told, true);
        });
        return result;
    }

    @Override
    public AgentStatus status() {
        try {
            return loop.submit(this::buildStatus).get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("agent is not responding: " + e, e);
        }
    }

    private void submit(CompletableFuture<Outcome> result, Runnable task) {
        try {
            loop.execute(() -> {
                try {
                    task.run();
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "agent command failed", e);
                    result.complete(Outcome.failure("internal error: " + e));
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException e) {
            result.complete(Outcome.failure("the agent is shutting down"));
        }
    }

    // ---- sessions ----------------------------------------------------------------------------

    /** One control connection, from connecting to closing. Callbacks from old sessions are ignored. */
    private final class Session implements ControlClient.Listener {
        final URI server;
        final String authKey;
        final String hostname;
        final CompletableFuture<Outcome> pendingUp;
        final boolean logoutAfterLogin;
        ControlClient client;
        boolean loggedIn;
        long lastHeardNanos = System.nanoTime();
        ScheduledFuture<?> loginTimeout;

        Session(URI server, String authKey, String hostname, CompletableFuture<Outcome> pendingUp, boolean logoutAfterLogin) {
            this.server = server;
            this.authKey = authKey;
            this.hostname = hostname;
            this.pendingUp = pendingUp;
            this.logoutAfterLogin = logoutAfterLogin;
        }

        @Override
        public void onMessage(ControlMessage message) {
            runOnLoop(() -> handle(this, message));
        }

        @Override
        public void onClosed(String reason) {
            runOnLoop(() -> failSession(this, reason));
        }

        void cancelTimers() {
            if (loginTimeout != null) {
                loginTimeout.cancel(false);
            }
        }

        void answer(Outcome outcome) {
            if (pendingUp != null) {
                pendingUp.complete(outcome);
            }
        }
    }

    private void runOnLoop(Runnable task) {
        try {
            loop.execute(guarded(task));
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // shutting down
        }
    }

    private void resume() {
        AgentState.Saved saved = state.saved();
        URI uri;
        try {
            uri = ControlClient.normalize(URI.create(saved.loginServer()));
        } catch (IllegalArgumentException e) {
            lastError = "saved login server is unusable: " + saved.loginServer();
            return;
        }
        // After a failed attempt, the next replica in turn: the node's registration is valid at all of them.
        List<URI> candidates = loginCandidates(uri);
        uri = candidates.get(backoffAttempt % candidates.size());
        startSession(uri, null, saved.hostname() == null ? machineHostname() : saved.hostname(), null, false);
    }

    private void startSession(URI server, String authKey, String hostname, CompletableFuture<Outcome> pendingUp, boolean logoutAfterLogin) {
        Session s = new Session(server, authKey, hostname, pendingUp, logoutAfterLogin);
        current = s;
        connector.connect(server, state.machinePrivateKey(), s).whenComplete((client, error) -> runOnLoop(() -> {
            if (current != s) {
                if (client != null) {
                    client.close();
                }
                return;
            }
            if (error != null) {
                failSession(s, ControlClient.describe(error));
                return;
            }
            s.client = client;
            if (!client.isOpen()) {
                failSession(s, "the server closed the connection right after the handshake");
                return;
            }
            s.lastHeardNanos = System.nanoTime();
            reportedEndpoints = currentEndpoints();
            reportedHome = null; // told once the login succeeded (checkEndpoints)
            client.send(new ControlMessage.Login(state.nodePublicKeyBase64(), authKey, hostname, operatingSystem(), reportedEndpoints));
            s.loginTimeout = loop.schedule(guarded(() -> {
                if (current == s && !s.loggedIn) {
                    failSession(s, "no answer to the login from " + display(s.server) + " within " + LOGIN_TIMEOUT_SECONDS + " s");
                }
            }), LOGIN_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        }));
    }

    /** Ends the current session without reconnecting (a command replaces or stops it). */
    private void endSession() {
        Session s = current;
        current = null;
        if (s != null) {
            s.cancelTimers();
            if (s.client != null) {
                s.client.close();
            }
            s.answer(Outcome.failure("cancelled by a newer command"));
        }
    }

    /** The session broke or was refused: answer a waiting `up`, then reconnect if we should. */
    private void failSession(Session s, String reason) {
        if (current != s) {
            return;
        }
        current = null;
        s.cancelTimers();
        if (s.client != null) {
            s.client.close();
        }
        String message = s.loggedIn ? "lost connection to " + display(s.server) + ": " + reason
                : reason.contains(display(s.server)) ? reason : "cannot reach login server " + display(s.server) + ": " + reason;
        lastError = message;
        LOG.warning(message);
        s.answer(Outcome.failure(message));
        scheduleReconnectIfWanted();
    }

    /** The saved login server first, then every other replica the map named (NetworkInfo.controlUrls). */
    private List<URI> loginCandidates(URI primary) {
        List<URI> all = new ArrayList<>(List.of(primary));
        ControlMessage.NetworkInfo n = networkInfo;
        if (n != null && n.controlUrls() != null) {
            for (String u : n.controlUrls()) {
                try {
                    URI other = ControlClient.normalize(URI.create(u));
                    if (!all.contains(other)) {
                        all.add(other);
                    }
                } catch (IllegalArgumentException malformed) {
                    LOG.fine("ignoring control URL " + u);
                }
            }
        }
        return all;
    }

    private void scheduleReconnectIfWanted() {
        AgentState.Saved saved = state.saved();
        if (!saved.loggedIn() || !saved.wantRunning() || saved.loginServer() == null || reconnect != null || current != null) {
            return;
        }
        long base = Math.min(MAX_BACKOFF_MILLIS, 1000L << Math.min(backoffAttempt, 5));
        long delay = Math.min(MAX_BACKOFF_MILLIS, (long) (base * (0.8 + 0.4 * ThreadLocalRandom.current().nextDouble())));
        backoffAttempt++;
        LOG.info("reconnecting to " + saved.loginServer() + " (or another replica of it) in " + delay + " ms");
        reconnect = loop.schedule(guarded(() -> {
            reconnect = null;
            AgentState.Saved now = state.saved();
            if (current == null && now.loggedIn() && now.wantRunning()) {
                resume();
            }
        }), delay, TimeUnit.MILLISECONDS);
    }

    private void cancelReconnect() {
        if (reconnect != null) {
            reconnect.cancel(false);
            reconnect = null;
        }
        backoffAttempt = 0;
    }

    private void handle(Session s, ControlMessage message) {
        if (current != s) {
            return;
        }
        s.lastHeardNanos = System.nanoTime();
        switch (message) {
            case ControlMessage.LoginResult r -> loginResult(s, r);
            case ControlMessage.FullMap m when s.loggedIn -> {
                self = m.self() != null ? m.self() : self;
                networkInfo = m.network();
                peers.replaceAll(m.peers());
                configureInterface();
                updateDiscovery();
                if (relay != null) {
                    relay.setRelayMap(networkInfo == null ? null : networkInfo.relays(), s.server);
                }
            }
            case ControlMessage.NetworkUpdate u when s.loggedIn -> {
                networkInfo = u.network();
                if (relay != null && networkInfo != null) {
                    relay.setRelayMap(networkInfo.relays(), s.server);
                }
            }
            case ControlMessage.MapDelta d when s.loggedIn -> {
                if (d.self() != null) {
                    self = d.self();
                    configureInterface();
                }
                peers.apply(d.upserted(), d.removed());
                updateDiscovery();
            }
            case ControlMessage.Goodbye g -> {
                lastError = "the server ended the session: " + g.reason();
                LOG.warning(lastError);
            }
            case ControlMessage.Pong p -> { }
            default -> LOG.fine("ignoring " + message.getClass().getSimpleName());
        }
    }

    private void loginResult(Session s, ControlMessage.LoginResult r) {
        s.cancelTimers();
        if (r.ok()) {
            s.loggedIn = true;
            backoffAttempt = 0;
            lastError = null;
            self = r.self();
            if (s.logoutAfterLogin) {
                current = null;
                tellServerLogout(s, s.pendingUp);
                return;
            }
            save(new AgentState.Saved(displayString(s.server), s.hostname, true, true));
            if (relay != null && networkInfo != null) {
                // A first login learns the relay map from the full map that follows.
                relay.setRelayMap(networkInfo.relays(), s.server);
            }
            LOG.info("logged in to " + display(s.server) + " as " + (self == null ? s.hostname : self.hostname()));
            s.answer(Outcome.success(self));
            return;
        }
        String message = rejection(s.server, r.code(), r.error());
        current = null;
        if (s.client != null) {
            s.client.close();
        }
        lastError = message;
        LOG.warning(message);
        s.answer(Outcome.failure(message));
        if ("UNAVAILABLE".equals(r.code())) {
            // The server could not answer yet (e.g. a replica is still taking over a lost one's
            // shards): nothing was refused, so keep the registration and the tunnels, and try again.
            scheduleReconnectIfWanted();
            return;
        }
        if (s.authKey == null) {
            // The server no longer accepts this machine without a key: expired, deleted or logged out.
            AgentState.Saved saved = state.saved();
            save(new AgentState.Saved(saved.loginServer(), saved.hostname(), false, false));
            unconfigure();
            self = null;
        } else {
            scheduleReconnectIfWanted(); // a bad new key leaves an existing registration in place
        }
    }

    private void tellServerLogout(Session s, CompletableFuture<Outcome> result) {
        s.client.send(new ControlMessage.Logout())
                .orTimeout(5, TimeUnit.SECONDS)
                .whenComplete((v, e) -> {
                    s.client.close();
                    if (result != null) {
                        result.complete(e == null ? Outcome.success(null)
                                : new Outcome(true, "logged out here, but could not tell the server: " + e.getMessage(), null));
                    }
                });
    }

    static String rejection(URI server, String code, String error) {
        String where = display(server);
        if ("NEEDS_AUTH".equals(code)) {
            return "this node is not logged in to " + where + " (unknown, expired or logged out); log in with: trellis up --login-server "
                    + where + " --authkey KEY";
        }
        String what = error != null && !error.isBlank() ? error : switch (code == null ? "" : code) {
            case "EXPIRED" -> "the auth key has expired";
            case "USED" -> "the auth key has already been used";
            case "NOT_FOUND" -> "unknown auth key";
            default -> "no reason given";
        };
        return "login refused by " + where + ": " + what + (code == null ? "" : " (" + code + ")");
    }

    // ---- applying the map ----------------------------------------------------------------------

    /** Tells path discovery every peer and the endpoints the map lists for it. */
    private void updateDiscovery() {
        if (discovery == null) {
            return;
        }
        Map<String, List<java.net.InetSocketAddress>> candidates = new HashMap<>();
        for (NodeInfo n : peers.nodes()) {
            List<java.net.InetSocketAddress> list = new ArrayList<>();
            for (String e : n.endpoints() == null ? List.<String>of() : n.endpoints()) {
                try {
                    java.net.InetSocketAddress a = PeerReconciler.parseEndpoint(e);
                    if (a != null) {
                        list.add(a);
                    }
                } catch (RuntimeException malformed) {
                    // skip
                }
            }
            candidates.put(n.nodeKey(), list);
        }
        discovery.setPeers(candidates);
        if (relay != null) {
            Map<String, String> regions = new HashMap<>();
            for (NodeInfo n : peers.nodes()) {
                regions.put(n.nodeKey(), n.homeRelay());
            }
            relay.setPeerRegions(regions);
        }
    }

    /** The server's STUN port until the relay map carries it. */
    static final int STUN_PORT = 3478;
    /** NAT mappings change rarely, but a roaming host's does: asked this often. */
    static final int REFLEXIVE_CHECK_SECONDS = 20;

    /**
     * Whether UDP reaches the server (a STUN binding from a fresh socket), this host's reflexive
     * address, and the latency to every relay region (TCP connect time, best of three).
     */
    @Override
    public CompletableFuture<NetcheckReport> netcheck() {
        String server = state.saved().loginServer();
        if (server == null) {
            return CompletableFuture.failedFuture(new IllegalStateException("not logged in: no server to check against"));
        }
        URI uri = URI.create(server);
        CompletableFuture<String[]> stun = CompletableFuture.supplyAsync(() -> {
            try {
                java.net.InetSocketAddress reflexive = dev.trellis.dataplane.stun.StunClient.bindingRequest(
                        new java.net.InetSocketAddress(uri.getHost(), STUN_PORT), java.time.Duration.ofSeconds(3));
                return new String[] {PeerReconciler.formatEndpoint(reflexive.getAddress(), reflexive.getPort()), null};
            } catch (java.io.IOException e) {
                return new String[] {null, "no STUN answer from " + uri.getHost() + ":" + STUN_PORT + " (" + e.getMessage() + ")"};
            }
        });
        CompletableFuture<List<RelayLink.RegionLatency>> regions = relay == null
                ? CompletableFuture.completedFuture(List.of())
                : relay.measure();
        return stun.thenCombine(regions, (st, list) -> new NetcheckReport(st[0] != null, st[0], st[1],
                relay == null ? null : relay.homeRegion(),
                list.stream().map(r -> new AgentControl.RelayLatency(r.region(), r.url(), r.millis(), r.error())).toList()));
    }

    /** One disco ping to a peer (by hostname or overlay address) over its current path. */
    @Override
    public CompletableFuture<PathDiscovery.PingResult> ping(String peer) {
        if (discovery == null) {
            return CompletableFuture.failedFuture(new IllegalStateException("path discovery is off"));
        }
        CompletableFuture<String> key = new CompletableFuture<>();
        loop.execute(() -> {
            for (NodeInfo n : peers.nodes()) {
                boolean byAddress = n.addresses() != null && n.addresses().stream().map(PeerReconciler::stripLength).anyMatch(peer::equals);
                if (peer.equals(n.hostname()) || byAddress) {
                    key.complete(n.nodeKey());
                    return;
                }
            }
            key.completeExceptionally(new IllegalArgumentException("no peer named " + peer));
        });
        return key.thenCompose(k -> discovery.ping(k).thenApply(r -> {
            if (!r.path().equals("relay") || relay == null) {
                return r;
            }
            String region = relay.regionFor(Base64.getDecoder().decode(k));
            return new PathDiscovery.PingResult("relay " + (region == null ? "?" : region), r.rttNanos());
        }));
    }

    private void configureInterface() {
        if (self == null) {
            return;
        }
        List<InetAddress> addresses = new ArrayList<>();
        for (String a : self.addresses() == null ? List.<String>of() : self.addresses()) {
            try {
                addresses.add(dev.trellis.proto.wireguard.AllowedIps.Prefix.parse(PeerReconciler.stripLength(a)).address());
            } catch (IllegalArgumentException e) {
                LOG.warning("ignoring unusable own address '" + a + "'");
            }
        }
        List<String> routes = new ArrayList<>();
        if (networkInfo != null) {
            for (String prefix : new String[] {networkInfo.ipv4Prefix(), networkInfo.ipv6Prefix()}) {
                if (prefix != null && !prefix.isBlank()) {
                    routes.add(prefix.strip());
                }
            }
        }
        try {
            network.apply(addresses, routes);
        } catch (IOException e) {
            lastError = "cannot configure " + interfaceName + ": " + e.getMessage();
            LOG.warning(lastError);
        }
    }

    private void unconfigure() {
        peers.clear();
        network.clear();
        if (relay != null) {
            relay.disconnect();
        }
        updateDiscovery();
    }

    private void onHomeRelayChanged() {
        loop.execute(guarded(this::checkEndpoints));
    }

    /** The host's own addresses and, once STUN has answered, the WireGuard socket's reflexive address. */
    private List<String> currentEndpoints() {
        List<String> endpoints = new ArrayList<>(endpointScanner.get());
        String r = reflexive;
        if (r != null && !endpoints.contains(r)) {
            endpoints.add(r);
        }
        return List.copyOf(endpoints);
    }

    /** Asks the server's STUN, from the WireGuard socket, where this node appears; reports a change. */
    private void refreshReflexive() {
        String server = state.saved().loginServer();
        if (discovery == null || server == null) {
            return;
        }
        URI uri = URI.create(server);
        if (uri.getHost() == null) {
            return;
        }
        discovery.reflexiveAddress(new java.net.InetSocketAddress(uri.getHost(), STUN_PORT), java.time.Duration.ofSeconds(3))
                .whenComplete((address, e) -> {
                    String now = e != null || address == null ? null : PeerReconciler.formatEndpoint(address.getAddress(), address.getPort());
                    if (!java.util.Objects.equals(now, reflexive)) {
                        reflexive = now;
                        loop.execute(guarded(this::checkEndpoints));
                    }
                });
    }

    private void checkEndpoints() {
        Session s = current;
        if (s == null || !s.loggedIn || s.client == null) {
            return;
        }
        List<String> now = currentEndpoints();
        String home = relay == null ? null : relay.homeRegion();
        if (!now.equals(reportedEndpoints) || !java.util.Objects.equals(home, reportedHome)) {
            reportedEndpoints = now;
            reportedHome = home;
            s.client.send(new ControlMessage.UpdateEndpoints(now, home));
        }
    }

    private void keepalive() {
        Session s = current;
        if (s == null || s.client == null) {
            return;
        }
        if (System.nanoTime() - s.lastHeardNanos > TimeUnit.SECONDS.toNanos(SILENCE_LIMIT_SECONDS)) {
            failSession(s, "no word from the server for " + SILENCE_LIMIT_SECONDS + " s");
        } else if (s.loggedIn) {
            s.client.send(new ControlMessage.Ping(++pingId));
        }
    }

    // ---- status ------------------------------------------------------------------------------

    private AgentStatus buildStatus() {
        AgentState.Saved saved = state.saved();
        Session s = current;
        boolean connected = s != null && s.loggedIn;
        String backend = !saved.loggedIn() ? AgentStatus.NEEDS_LOGIN : !saved.wantRunning() ? AgentStatus.STOPPED : AgentStatus.RUNNING;
        String nodeKey = state.nodePublicKeyBase64();
        AgentStatus.Self me = new AgentStatus.Self(
                self != null ? self.hostname() : saved.hostname() != null ? saved.hostname() : machineHostname(),
                self != null && self.addresses() != null && saved.loggedIn() ? self.addresses().stream().map(PeerReconciler::stripLength).toList() : List.of(),
                nodeKey, connected);
        Map<String, Device.PeerStatus> stats = new HashMap<>();
        for (Device.PeerStatus p : device.peerStatuses()) {
            stats.put(Base64.getEncoder().encodeToString(p.publicKey()), p);
        }
        List<AgentStatus.Peer> list = new ArrayList<>();
        Map<String, PathDiscovery.PathStatus> paths = Map.of();
        if (discovery != null) {
            try {
                paths = discovery.statuses().get(2, TimeUnit.SECONDS);
            } catch (Exception e) {
                LOG.fine("path status unavailable: " + e);
            }
        }
        for (NodeInfo n : peers.nodes()) {
            Device.PeerStatus d = stats.get(n.nodeKey());
            PathDiscovery.PathStatus path = paths.get(n.nodeKey());
            String region = relay == null ? null : relay.regionFor(Base64.getDecoder().decode(n.nodeKey()));
            String pathName = path != null && path.direct() ? "direct" : region != null ? "relay" : "direct";
            list.add(new AgentStatus.Peer(n.id(), n.hostname(),
                    n.addresses() == null ? List.of() : n.addresses().stream().map(PeerReconciler::stripLength).toList(),
                    n.nodeKey(), n.online(), n.lastSeen(), n.endpoints() == null ? List.of() : n.endpoints(),
                    d == null || d.endpoint() == null ? null : PeerReconciler.formatEndpoint(d.endpoint().getAddress(), d.endpoint().getPort()),
                    d == null || d.lastHandshakeEpochNanos() == 0 ? null
                            : Instant.ofEpochSecond(0, d.lastHandshakeEpochNanos()),
                    d == null ? 0 : d.rxBytes(), d == null ? 0 : d.txBytes(),
                    pathName, pathName.equals("relay") ? region : null));
        }
        return new AgentStatus(backend, saved.loginServer(), connected, lastError, interfaceName, device.listenPort(), me, list);
    }

    // ---- helpers -----------------------------------------------------------------------------

    private void save(AgentState.Saved saved) {
        try {
            state.save(saved);
        } catch (IOException e) {
            lastError = "cannot write state: " + e.getMessage();
            LOG.log(Level.WARNING, lastError, e);
        }
    }

    private static String display(URI server) {
        return displayString(server);
    }

    /** The URL as a person typed it: without the trailing slash we add for resolving. */
    private static String displayString(URI server) {
        String s = server.toString();
        return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s;
    }

    static String operatingSystem() {
        return System.getProperty("os.name", "unknown").toLowerCase();
    }

    /** The kernel's hostname, else what the JDK resolves, else "node". */
    public static String machineHostname() {
        try {
            String name = Files.readString(Path.of("/proc/sys/kernel/hostname")).strip();
            if (!name.isEmpty()) {
                return name;
            }
        } catch (IOException | RuntimeException ignored) {
            // not Linux
        }
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "node";
        }
    }

    /** Stops talking to the server; leaves the device to its owner (peers keep working until it closes). */
    @Override
    public void close() {
        CompletableFuture<Void> done = new CompletableFuture<>();
        try {
            loop.execute(() -> {
                cancelReconnect();
                endSession();
                done.complete(null);
            });
            done.get(5, TimeUnit.SECONDS);
        } catch (Exception ignored) {
            // already stopped
        }
        loop.shutdownNow();
        if (relay != null) {
            relay.close();
        }
        if (discovery != null) {
            discovery.close();
        }
    }
}
