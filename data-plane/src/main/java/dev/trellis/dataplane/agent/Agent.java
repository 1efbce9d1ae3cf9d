package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.dns.NodeDns;
import dev.trellis.dataplane.filter.NodeFilter;
import dev.trellis.dataplane.filter.PacketFilter;
import dev.trellis.dataplane.multicast.MulticastFanout;
import dev.trellis.dataplane.stun.StunClient;
import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.control.ControlMessage.NodeInfo;
import dev.trellis.proto.wireguard.AllowedIps;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node agent: carries out the local API's commands (up, down, logout, status, netcheck, ping)
 * and keeps the WireGuard device's peers and the interface's addresses and routes equal to the
 * network map that the {@link ControlConnection} receives. The parts it wires: the control
 * connection (login, backoff, keepalive), {@link PeerReconciler} (map → device peers), {@link
 * EndpointReporter} (where this node can be reached), and, with path discovery, {@link PeerPaths}
 * (each peer's direct or relayed path; the device's transport) and {@link RelayConnections} (relay
 * connections and the home relay), and the device's inbound packet filter ({@link NodeFilter}: the
 * server's access policy). The device, its peers and the filter keep running while the server is
 * unreachable: known peers stay reachable.
 *
 * <p>Threads: all of the agent's own state, the control connection's, the reconciler's and the
 * endpoint reporter's live on one loop thread ("trellis-agent"); control-channel callbacks and
 * local API calls are queued onto it, so there are no locks and messages are applied in the order
 * they arrived. {@link #status()} reads the path and relay threads' published snapshots only.
 */
public final class Agent implements AgentControl, AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Agent.class);

  /** IPv4 multicast through the Trellis interface, behind any route the host already has. */
  static final String MULTICAST_ROUTE = "224.0.0.0/4 src %s metric 2000";

  private final AgentState state;
  private final Device device;
  private final String interfaceName;
  private final NetworkConfigurator network;
  private final PeerReconciler peers;
  private final ScheduledExecutorService loop;
  private final ControlConnection control;
  private final EndpointReporter endpoints;

  /** Names of the overlay on this host (null: not managed, as in unit tests). */
  private final NodeDns dns;

  /** What the device lets in from peers: the server's access policy (none until it sends one). */
  private final NodeFilter filter = new NodeFilter();

  private final MulticastFanout multicast = new MulticastFanout();

  /** Both null in tests that run without relay or path discovery. */
  private final PeerPaths paths;

  private final RelayConnections relays;

  /** Made on first use: an agent nobody asks for metrics loads none of their classes. */
  private AgentMetrics metrics;

  // ---- loop-thread state ----
  private NodeInfo self;
  private ControlMessage.NetworkInfo networkInfo;
  private String lastError;

  /** Where the waiting `up` hears why it still waits. */
  private Consumer<String> upProgress = message -> {};

  /** Without path discovery: peers are reached at their map endpoints only. */
  public Agent(
      AgentState state,
      Device device,
      String interfaceName,
      NetworkConfigurator network,
      ControlConnection.Connector connector,
      Supplier<List<String>> endpointScanner) {
    this(state, device, interfaceName, network, connector, endpointScanner, null, null, null);
  }

  /**
   * With path discovery: {@code paths} becomes the device's transport, and peers are reached
   * through the relay until a direct path is found.
   */
  public Agent(
      AgentState state,
      Device device,
      String interfaceName,
      NetworkConfigurator network,
      ControlConnection.Connector connector,
      Supplier<List<String>> endpointScanner,
      PeerPaths paths,
      HttpClient http,
      NodeDns dns) {
    this.state = state;
    this.dns = dns;
    this.device = device;
    this.interfaceName = interfaceName;
    this.network = network;
    this.paths = paths;
    device.setInboundFilter(filter);
    device.setMulticastRouter(multicast);
    this.loop =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "trellis-agent");
              t.setDaemon(true);
              return t;
            });
    this.relays =
        paths == null
            ? null
            : new RelayConnections(
                paths::receiveRelayed,
                http,
                state.nodePrivateKey(),
                System.getenv("TRELLIS_HOME_RELAY"),
                home -> runOnLoop(this::checkEndpoints));
    if (paths != null) {
      paths.setRelay(relays);
      paths.attach();
    }
    this.peers =
        new PeerReconciler(device, address -> HostEndpoints.hasFamily(interfaceName, address));
    this.endpoints =
        new EndpointReporter(
            loop,
            endpointScanner,
            paths,
            () -> relays == null ? null : relays.homeRegion(),
            () -> state.saved().multicastMember(),
            () -> state.saved().loginServer());
    this.control =
        new ControlConnection(
            loop,
            connector,
            state.machinePrivateKey(),
            new Sessions(),
            () -> state.saved().loggedIn() && state.saved().wantRunning(),
            () -> state.saved().loginServer(),
            () ->
                networkInfo == null || networkInfo.controlUrls() == null
                    ? List.of()
                    : networkInfo.controlUrls());
  }

  /** Starts the timers and, if the node was logged in and up when it stopped, resumes. */
  public void start() {
    if (dns != null) {
      loop.execute(ControlConnection.guarded(dns::recover));
    }
    control.start();
    long check = AgentTiming.ENDPOINT_CHECK_INTERVAL.toMillis();
    loop.scheduleWithFixedDelay(
        ControlConnection.guarded(this::checkEndpoints), check, check, TimeUnit.MILLISECONDS);
    loop.scheduleWithFixedDelay(
        ControlConnection.guarded(() -> endpoints.refreshReflexive(this::checkEndpoints)),
        AgentTiming.REFLEXIVE_FIRST_CHECK.toMillis(),
        AgentTiming.REFLEXIVE_CHECK_INTERVAL.toMillis(),
        TimeUnit.MILLISECONDS);
    long report = AgentTiming.QUALITY_REPORT_INTERVAL.toMillis();
    loop.scheduleWithFixedDelay(
        ControlConnection.guarded(this::reportQuality), report, report, TimeUnit.MILLISECONDS);
    loop.execute(
        ControlConnection.guarded(
            () -> {
              AgentState.Saved saved = state.saved();
              if (saved.loggedIn() && saved.wantRunning() && saved.loginServer() != null) {
                LOG.info("resuming session with " + saved.loginServer());
                resume();
              }
            }));
  }

  // ---- AgentControl ----------------------------------------------------------------------

  @Override
  public CompletableFuture<Outcome> up(
      String loginServer, String authKey, String hostname, Consumer<String> progress) {
    CompletableFuture<Outcome> result = new CompletableFuture<>();
    submit(
        result,
        () -> {
          upProgress = progress;
          AgentState.Saved saved = state.saved();
          String server =
              blankToNull(loginServer) != null ? loginServer.strip() : saved.loginServer();
          if (server == null) {
            result.complete(Outcome.failure("no login server known: pass --login-server URL"));
            return;
          }
          URI uri;
          try {
            uri = ControlClient.normalize(URI.create(server));
          } catch (IllegalArgumentException e) {
            result.complete(
                Outcome.failure(
                    "login server must be an http:// or https:// URL, got '" + server + "'"));
            return;
          }
          String host =
              blankToNull(hostname) != null
                  ? hostname.strip()
                  : saved.hostname() != null ? saved.hostname() : machineHostname();
          String key = blankToNull(authKey);
          String asked = blankToNull(hostname) == null ? null : hostname.strip();
          String registered = self != null ? self.hostname() : saved.hostname();
          if (key == null
              && saved.loggedIn()
              && asked != null
              && registered != null
              && !asked.equals(registered)
              && !asked.equals(saved.hostname())) {
            // Without a key the server resumes the registration as it is: say so, do not ignore it.
            result.complete(
                Outcome.failure(
                    "this node is registered as "
                        + registered
                        + "; to rename it, log in again with a key: trellis up --authkey KEY"
                        + " --hostname "
                        + asked
                        + " (or an admin runs: trellis nodes rename ID "
                        + asked
                        + ")"));
            return;
          }
          ControlConnection.Session s = control.current();
          if (s != null
              && s.loggedIn
              && key == null
              && s.server.equals(uri)
              && s.hostname.equals(host)
              && saved.wantRunning()) {
            result.complete(Outcome.success(self));
            return;
          }
          control.cancelReconnect();
          control.end();
          control.open(uri, key, host, result, false);
        });
    return result;
  }

  @Override
  public CompletableFuture<Outcome> setPreferences(Boolean acceptDns, Boolean multicastMember) {
    CompletableFuture<Outcome> result = new CompletableFuture<>();
    submit(
        result,
        () -> {
          AgentState.Saved next = state.saved().withPreferences(acceptDns, multicastMember);
          if (!next.equals(state.saved())) {
            save(next);
            configureInterface();
            updateNames();
            updateMulticast();
            checkEndpoints(); // tells the server whether this node takes part in multicast
          }
          result.complete(Outcome.success(self));
        });
    return result;
  }

  @Override
  public CompletableFuture<Outcome> down() {
    CompletableFuture<Outcome> result = new CompletableFuture<>();
    submit(
        result,
        () -> {
          control.cancelReconnect();
          control.end();
          AgentState.Saved saved = state.saved();
          save(saved.with(saved.loginServer(), saved.hostname(), saved.loggedIn(), false));
          unconfigure();
          result.complete(Outcome.success(null));
        });
    return result;
  }

  @Override
  public CompletableFuture<Outcome> logout() {
    CompletableFuture<Outcome> result = new CompletableFuture<>();
    submit(
        result,
        () -> {
          control.cancelReconnect();
          AgentState.Saved saved = state.saved();
          ControlConnection.Session s = control.current();
          save(saved.with(saved.loginServer(), saved.hostname(), false, false));
          unconfigure();
          self = null;
          if (s != null && s.loggedIn) {
            control.logout(control.detach(), result);
            return;
          }
          control.end();
          if (!saved.loggedIn() || saved.loginServer() == null) {
            result.complete(Outcome.success(null));
            return;
          }
          // Not connected right now: connect just to tell the server, so it forgets this node.
          CompletableFuture<Outcome> told = new CompletableFuture<>();
          told.whenComplete(
              (o, e) ->
                  result.complete(
                      o != null && o.ok()
                          ? o
                          : new Outcome(
                              true,
                              "logged out here, but could not tell the server: "
                                  + (o != null ? o.error() : e),
                              null)));
          control.open(
              ControlClient.normalize(URI.create(saved.loginServer())),
              null,
              saved.hostname() == null ? machineHostname() : saved.hostname(),
              told,
              true);
        });
    return result;
  }

  @Override
  public String metrics() {
    return nodeMetrics().text();
  }

  /** The node's metrics, for a listener of their own (`trellis agent --metrics-listen`). */
  public synchronized AgentMetrics nodeMetrics() {
    if (metrics == null) {
      metrics =
          new AgentMetrics(
              this::status,
              device::dropCounts,
              () -> relays == null ? Map.of() : relays.reconnects());
    }
    return metrics;
  }

  @Override
  public AgentStatus status() {
    try {
      return loop.submit(this::buildStatus)
          .get(AgentTiming.STATUS_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw new IllegalStateException("agent is not responding: " + e, e);
    }
  }

  /**
   * Whether UDP reaches the server (a STUN binding from a fresh socket), this host's reflexive
   * address, and the latency to every relay region (TCP connect time, best of three).
   */
  @Override
  public CompletableFuture<NetcheckReport> netcheck() {
    String server = state.saved().loginServer();
    if (server == null) {
      return CompletableFuture.failedFuture(
          new IllegalStateException("not logged in: no server to check against"));
    }
    URI uri = URI.create(server);
    int port = AgentTiming.STUN_PORT;
    CompletableFuture<String[]> stun =
        CompletableFuture.supplyAsync(
            () -> {
              try {
                InetSocketAddress reflexive =
                    StunClient.bindingRequest(
                        new InetSocketAddress(uri.getHost(), port), AgentTiming.STUN_TIMEOUT);
                return new String[] {Endpoints.format(reflexive), null};
              } catch (IOException e) {
                return new String[] {
                  null,
                  "no STUN answer from " + uri.getHost() + ":" + port + " (" + e.getMessage() + ")"
                };
              }
            });
    CompletableFuture<List<RelayProbe.RelayResult>> regions =
        relays == null ? CompletableFuture.completedFuture(List.of()) : relays.measure();
    return stun.thenCombine(
        regions,
        (st, list) ->
            new NetcheckReport(
                st[0] != null,
                st[0],
                st[1],
                relays == null ? null : relays.homeRegion(),
                list.stream()
                    .map(
                        r ->
                            new RelayLatency(
                                r.relay().region(), r.relay().url(), r.millis(), r.error()))
                    .toList()));
  }

  /** One disco ping to a peer (by hostname or overlay address) over its current path. */
  @Override
  public CompletableFuture<PeerPaths.PingResult> ping(String peer) {
    if (paths == null) {
      return CompletableFuture.failedFuture(new IllegalStateException("path discovery is off"));
    }
    CompletableFuture<String> key = new CompletableFuture<>();
    loop.execute(
        () -> {
          AgentStatus.Names names = namesStatus();
          for (NodeInfo n : peers.nodes()) {
            boolean byAddress =
                n.addresses() != null
                    && n.addresses().stream()
                        .map(PeerReconciler::stripLength)
                        .anyMatch(peer::equals);
            if (names.names(peer, n.hostname()) || byAddress) {
              key.complete(n.nodeKey());
              return;
            }
          }
          key.completeExceptionally(new IllegalArgumentException("no peer named " + peer));
        });
    return key.thenCompose(
        k ->
            paths
                .ping(k)
                .thenApply(
                    r -> {
                      if (!r.path().equals("relay")) {
                        return r;
                      }
                      String region = relays.regionFor(Base64.getDecoder().decode(k));
                      return new PeerPaths.PingResult(
                          "relay " + (region == null ? "?" : region), r.rttNanos());
                    }));
  }

  private void submit(CompletableFuture<Outcome> result, Runnable task) {
    try {
      loop.execute(
          () -> {
            try {
              task.run();
            } catch (RuntimeException e) {
              LOG.warn("agent command failed", e);
              result.complete(Outcome.failure("internal error: " + e));
            }
          });
    } catch (RejectedExecutionException e) {
      result.complete(Outcome.failure("the agent is shutting down"));
    }
  }

  private void runOnLoop(Runnable task) {
    try {
      loop.execute(ControlConnection.guarded(task));
    } catch (RejectedExecutionException e) {
      // shutting down
    }
  }

  // ---- what the control connection reports (loop thread) -----------------------------------

  private void resume() {
    AgentState.Saved saved = state.saved();
    String problem =
        control.resume(saved.hostname() == null ? machineHostname() : saved.hostname());
    if (problem != null) {
      lastError = problem;
    }
  }

  private final class Sessions implements ControlConnection.Listener {
    @Override
    public ControlMessage.Login login(ControlConnection.Session s) {
      return new ControlMessage.Login(
          state.nodePublicKeyBase64(),
          s.authKey,
          s.hostname,
          operatingSystem(),
          endpoints.forLogin());
    }

    @Override
    public void onLoginResult(ControlConnection.Session s, ControlMessage.LoginResult r) {
      loginResult(s, r);
    }

    @Override
    public void onMessage(ControlConnection.Session s, ControlMessage message) {
      applyMap(s, message);
    }

    @Override
    public void onFailed(ControlConnection.Session s, String message) {
      lastError = message;
    }

    @Override
    public void reconnectDue() {
      resume();
    }
  }

  private void loginResult(ControlConnection.Session s, ControlMessage.LoginResult r) {
    if (r.ok()) {
      control.loggedIn(s);
      lastError = null;
      self = r.self();
      if (s.logoutAfterLogin) {
        control.logout(control.detach(), s.pendingUp);
        return;
      }
      save(state.saved().with(ControlConnection.display(s.server), s.hostname, true, true));
      if (relays != null && networkInfo != null) {
        // A first login learns the relay map from the full map that follows.
        relays.setRelayMap(networkInfo.relays(), s.server);
      }
      LOG.info(
          "logged in to "
              + ControlConnection.display(s.server)
              + " as "
              + (self == null ? s.hostname : self.hostname()));
      // `up` returns once the first map is applied (peers, addresses, routes), so the next
      // command (`trellis ip -4 robot-2`, a ping) finds the network there; or, failing that, soon.
      loop.schedule(
          ControlConnection.guarded(() -> s.answer(Outcome.success(self))),
          AgentTiming.FIRST_MAP_WAIT.toMillis(),
          TimeUnit.MILLISECONDS);
      return;
    }
    String message = ControlConnection.rejection(s.server, r.code(), r.error());
    control.refused(s);
    lastError = message;
    LOG.warn(message);
    if ("UNAVAILABLE".equals(r.code()) && s.pendingUp != null && !s.logoutAfterLogin) {
      // Nothing was refused: the server is still taking over a lost member's work. A waiting `up`
      // hears why and keeps waiting while the same login is tried again.
      upProgress.accept(message + "; trying again");
      control.retry(s);
      return;
    }
    s.answer(Outcome.failure(message));
    if ("UNAVAILABLE".equals(r.code())) {
      // The server could not answer yet (e.g. a replica is still taking over a lost one's
      // shards): nothing was refused, so keep the registration and the tunnels, and try again.
      control.reconnectIfWanted();
      return;
    }
    if (s.authKey == null) {
      // The server no longer accepts this machine without a key: expired, deleted or logged out.
      AgentState.Saved saved = state.saved();
      save(saved.with(saved.loginServer(), saved.hostname(), false, false));
      unconfigure();
      self = null;
    } else {
      control.reconnectIfWanted(); // a bad new key leaves an existing registration in place
    }
  }

  // ---- applying the map (loop thread) --------------------------------------------------------

  private void applyMap(ControlConnection.Session s, ControlMessage message) {
    switch (message) {
      case ControlMessage.FullMap m -> {
        self = m.self() != null ? m.self() : self;
        networkInfo = m.network();
        peers.replaceAll(m.peers());
        configureInterface();
        updatePaths();
        updateNames();
        updateMulticast();
        if (relays != null) {
          relays.setRelayMap(networkInfo == null ? null : networkInfo.relays(), s.server);
        }
        s.answer(Outcome.success(self));
      }
      case ControlMessage.NetworkUpdate u -> {
        networkInfo = u.network();
        configureInterface();
        updateNames();
        updateMulticast();
        if (relays != null && networkInfo != null) {
          relays.setRelayMap(networkInfo.relays(), s.server);
        }
      }
      case ControlMessage.MapDelta d -> {
        if (d.self() != null) {
          self = d.self();
          configureInterface();
        }
        peers.apply(d.upserted(), d.removed());
        updatePaths();
        updateNames();
        updateMulticast();
      }
      case ControlMessage.PacketFilter f -> applyFilter(f);
      case ControlMessage.Goodbye g -> {
        lastError = "the server ended the session: " + g.reason();
        LOG.warn(lastError);
      }
      default -> LOG.debug("ignoring " + message.getClass().getSimpleName());
    }
  }

  /**
   * Puts the server's access policy in force for every packet from now on. It stays when the
   * session drops (the device keeps running) until a session sends another.
   */
  private void applyFilter(ControlMessage.PacketFilter message) {
    PacketFilter policy = filter.setRules(message.rules());
    if (policy == null) {
      LOG.info("packet filter: no policy, accepting every packet from peers");
      return;
    }
    LOG.info("packet filter: " + policy.ruleCount() + " rules in force");
    for (String problem : policy.problems()) {
      LOG.warn("packet filter: ignored " + problem);
    }
  }

  /**
   * Tells the paths every peer and the endpoints the map lists for it, and the relays where each
   * peer lives.
   */
  private void updatePaths() {
    if (paths == null) {
      return;
    }
    Map<String, PeerPaths.Peer> candidates = new HashMap<>();
    Map<String, String> regions = new HashMap<>();
    for (NodeInfo n : peers.nodes()) {
      List<InetSocketAddress> list = new ArrayList<>();
      for (String e : n.endpoints() == null ? List.<String>of() : n.endpoints()) {
        InetSocketAddress a = Endpoints.parseOrNull(e);
        if (a != null) {
          list.add(a);
        }
      }
      candidates.put(n.nodeKey(), new PeerPaths.Peer(n.hostname(), list));
      regions.put(n.nodeKey(), n.homeRelay());
    }
    paths.setPeers(candidates);
    relays.setPeerRegions(regions);
  }

  private void configureInterface() {
    if (self == null) {
      return;
    }
    List<InetAddress> addresses = new ArrayList<>();
    for (String a : self.addresses() == null ? List.<String>of() : self.addresses()) {
      try {
        addresses.add(AllowedIps.Prefix.parse(PeerReconciler.stripLength(a)).address());
      } catch (IllegalArgumentException e) {
        LOG.warn("ignoring unusable own address '" + a + "'");
      }
    }
    if (namesWanted()) {
      addresses.add(NodeDns.ADDRESS); // the node's resolver answers there
    }
    List<String> routes = overlayPrefixes();
    InetAddress ownIpv4 =
        addresses.stream().filter(a -> a instanceof Inet4Address).findFirst().orElse(null);
    if (multicastWanted() && ownIpv4 != null) {
      // Behind any multicast route the host already has (a lower metric wins), so the overlay
      // takes only the multicast that had nowhere else to go; from the node's own address, which
      // is the only source its multicast may have.
      routes.add(MULTICAST_ROUTE.formatted(ownIpv4.getHostAddress()));
    }
    try {
      network.apply(addresses, routes);
    } catch (IOException e) {
      lastError = "cannot configure " + interfaceName + ": " + e.getMessage();
      LOG.warn(lastError);
    }
  }

  /** The resolver's names follow the map: itself and the peers it may see. */
  private void updateNames() {
    if (dns != null) {
      dns.update(namesWanted() ? networkInfo.dns() : null, overlayPrefixes(), self, peers.nodes());
    }
  }

  /** This node takes part in multicast, and the network allows it. */
  private boolean multicastWanted() {
    return networkInfo != null
        && networkInfo.multicast() != null
        && state.saved().multicastMember();
  }

  /** Multicast follows the map: the members this node may see, the network's limits. */
  private void updateMulticast() {
    multicast.update(
        multicastWanted(),
        networkInfo == null ? null : networkInfo.multicast(),
        self,
        peers.nodes());
  }

  /** Names are on: the server sends them and this host accepts them. */
  private boolean namesWanted() {
    return dns != null
        && networkInfo != null
        && networkInfo.dns() != null
        && state.saved().acceptsDns();
  }

  /** The overlay's IPv4 and IPv6 prefixes from the map (routed to the interface). */
  private List<String> overlayPrefixes() {
    List<String> prefixes = new ArrayList<>();
    if (networkInfo != null) {
      for (String prefix : new String[] {networkInfo.ipv4Prefix(), networkInfo.ipv6Prefix()}) {
        if (prefix != null && !prefix.isBlank()) {
          prefixes.add(prefix.strip());
        }
      }
    }
    return prefixes;
  }

  private void unconfigure() {
    if (dns != null) {
      dns.stop();
    }
    multicast.update(false, null, null, List.of());
    peers.clear();
    network.clear();
    if (relays != null) {
      relays.disconnect();
    }
    updatePaths();
  }

  private void checkEndpoints() {
    endpoints.check(control.loggedIn());
  }

  // ---- status (loop thread) ------------------------------------------------------------------

  /** Each peer's byte counters (rx + tx) at the last report, and when (loop thread). */
  private final Map<Long, long[]> reportedBytes = new HashMap<>();

  /** Tells the server what was measured of each peer's path (loop thread). */
  private void reportQuality() {
    ControlConnection.Session s = control.current();
    if (s == null || !s.loggedIn) {
      return;
    }
    long now = System.nanoTime();
    Map<Long, long[]> bytesNow = new HashMap<>();
    List<ControlMessage.PeerQuality> peers = new ArrayList<>();
    for (AgentStatus.Peer p : buildStatus().peers()) {
      long bytes = p.rxBytes() + p.txBytes();
      bytesNow.put(p.id(), new long[] {bytes, now});
      if (!p.active() || (p.rttMs() == null && p.loss() == null)) {
        continue; // no traffic to it lately, or nothing measured on its path yet
      }
      long[] before = reportedBytes.get(p.id());
      Double bitsPerSecond =
          before == null || bytes < before[0] || now <= before[1]
              ? null
              : (bytes - before[0]) * 8e9 / (now - before[1]);
      if (peers.size() < ControlMessage.QualityReport.MAX_PEERS) {
        peers.add(
            new ControlMessage.PeerQuality(
                p.id(), p.path(), p.relay(), p.rttMs(), p.jitterMs(), p.loss(), bitsPerSecond));
      }
    }
    reportedBytes.clear();
    reportedBytes.putAll(bytesNow);
    if (!peers.isEmpty()) {
      s.client.send(new ControlMessage.QualityReport(peers));
    }
  }

  private AgentStatus buildStatus() {
    AgentState.Saved saved = state.saved();
    boolean connected = control.current() != null && control.current().loggedIn;
    String backend =
        !saved.loggedIn()
            ? AgentStatus.NEEDS_LOGIN
            : !saved.wantRunning() ? AgentStatus.STOPPED : AgentStatus.RUNNING;
    AgentStatus.Self me =
        new AgentStatus.Self(
            self != null
                ? self.hostname()
                : saved.hostname() != null ? saved.hostname() : machineHostname(),
            self != null && self.addresses() != null && saved.loggedIn()
                ? self.addresses().stream().map(PeerReconciler::stripLength).toList()
                : List.of(),
            state.nodePublicKeyBase64(),
            connected);
    Map<String, Device.PeerStatus> stats = new HashMap<>();
    for (Device.PeerStatus p : device.peerStatuses()) {
      stats.put(Base64.getEncoder().encodeToString(p.publicKey()), p);
    }
    Map<String, PeerPath.Status> pathStatus = paths == null ? Map.of() : paths.statuses();
    List<AgentStatus.Peer> list = new ArrayList<>();
    for (NodeInfo n : peers.nodes()) {
      Device.PeerStatus d = stats.get(n.nodeKey());
      PeerPath.Status path = pathStatus.get(n.nodeKey());
      PathQuality.Snapshot quality = path == null ? null : path.quality();
      String region =
          relays == null ? null : relays.regionFor(Base64.getDecoder().decode(n.nodeKey()));
      String pathName =
          path != null && path.direct() ? "direct" : region != null ? "relay" : "direct";
      list.add(
          new AgentStatus.Peer(
              n.id(),
              n.hostname(),
              n.addresses() == null
                  ? List.of()
                  : n.addresses().stream().map(PeerReconciler::stripLength).toList(),
              n.nodeKey(),
              n.online(),
              n.lastSeen(),
              n.endpoints() == null ? List.of() : n.endpoints(),
              d == null || d.endpoint() == null ? null : Endpoints.format(d.endpoint()),
              d == null || d.lastHandshakeEpochNanos() == 0
                  ? null
                  : Instant.ofEpochSecond(0, d.lastHandshakeEpochNanos()),
              d == null ? 0 : d.rxBytes(),
              d == null ? 0 : d.txBytes(),
              pathName,
              pathName.equals("relay") ? region : null,
              quality == null || Double.isNaN(quality.rttMs()) ? null : quality.rttMs(),
              quality == null || Double.isNaN(quality.jitterMs()) ? null : quality.jitterMs(),
              quality == null || Double.isNaN(quality.loss()) ? null : quality.loss(),
              path != null && path.active()));
    }
    return new AgentStatus(
        backend,
        saved.loginServer(),
        connected,
        lastError,
        interfaceName,
        device.listenPort(),
        me,
        list,
        filterStatus(),
        namesStatus(),
        multicastStatus());
  }

  private AgentStatus.Multicast multicastStatus() {
    MulticastFanout.Counters c = multicast.counters();
    Map<String, Long> dropped = new LinkedHashMap<>();
    dropped.put("rate", c.droppedRate.sum());
    dropped.put("loop", c.droppedLoop.sum());
    dropped.put("scope", c.droppedScope.sum());
    dropped.put("refused", c.refused.sum());
    return new AgentStatus.Multicast(
        multicast.member(),
        multicast.peerCount(),
        c.sent.sum(),
        c.copies.sum(),
        c.received.sum(),
        dropped);
  }

  private AgentStatus.Names namesStatus() {
    String domain =
        dns != null && dns.enabled() && networkInfo != null && networkInfo.dns() != null
            ? networkInfo.dns().baseDomain()
            : null;
    var c = dns == null ? null : dns.counters();
    String mode = dns == null ? null : dns.mode();
    if (c == null) return new AgentStatus.Names(domain, mode, 0, 0, 0, 0, 0);
    return new AgentStatus.Names(
        domain,
        mode,
        c.answered.sum(),
        c.forwarded.sum(),
        c.malformed.sum(),
        c.oversized.sum(),
        c.foreign.sum());
  }

  private AgentStatus.Filter filterStatus() {
    PacketFilter policy = filter.policy();
    return new AgentStatus.Filter(
        policy != null,
        policy == null ? 0 : policy.ruleCount(),
        filter.dropped(),
        filter.droppedByReason());
  }

  // ---- helpers -----------------------------------------------------------------------------

  private void save(AgentState.Saved saved) {
    try {
      state.save(saved);
    } catch (IOException e) {
      lastError = "cannot write state: " + e.getMessage();
      LOG.warn(lastError, e);
    }
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

  /**
   * Stops talking to the server; leaves the device to its owner (peers keep working until it
   * closes).
   */
  @Override
  public void close() {
    CompletableFuture<Void> done = new CompletableFuture<>();
    try {
      loop.execute(
          () -> {
            control.cancelReconnect();
            control.end();
            if (dns != null) {
              dns.stop();
            }
            done.complete(null);
          });
      done.get(5, TimeUnit.SECONDS);
    } catch (Exception ignored) {
      // already stopped
    }
    loop.shutdownNow();
    if (relays != null) {
      relays.close();
    }
    if (paths != null) {
      paths.close();
    }
  }
}
