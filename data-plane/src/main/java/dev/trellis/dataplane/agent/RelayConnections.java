package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.relay.RelayClient;
import dev.trellis.proto.control.ControlMessage.RelayInfo;
import dev.trellis.proto.wireguard.Curve25519;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.ByteBuffer;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's relay connections, one per region it needs (compare tailscale's magicsock {@code
 * derp.go}): the home region, chosen by {@link HomeRelayPolicy} from what {@link RelayProbe}
 * measured (again every {@link AgentTiming#RELAY_REPROBE_INTERVAL} and whenever the home connection
 * fails), and every region a peer is homed on that the home relay's mesh does not reach. When the
 * home relay is part of the cluster's mesh, packets for every peer on a meshed relay go through the
 * home connection (the relays forward between themselves). Every connection redials with backoff;
 * what arrives goes to the {@link Inbound} ({@link PeerPaths}).
 *
 * <p>Threads: the connection and homing state is owned by one thread ("relay-link"); the packet
 * threads call {@link #canSend} and {@link #send}, which read the volatile routes rebuilt on every
 * change; probes run on virtual threads and hand their report back to the owner thread.
 */
final class RelayConnections implements PeerPaths.Relay, AutoCloseable {
  /** The region a login server without a relay map stands for. */
  static final String DEFAULT_REGION = "default";

  private static final Logger LOG = LoggerFactory.getLogger(RelayConnections.class);

  /** Where relayed packets go; called on a relay client's thread. */
  interface Inbound {
    void receive(byte[] srcKey, byte[] packet, int length);
  }

  private final Inbound inbound;
  private final HttpClient http;
  private final byte[] nodePrivateKey;
  private final byte[] nodePublicKey;
  private final Consumer<String> onHomeChanged;

  /**
   * {@code TRELLIS_HOME_RELAY}: the region to home on whenever it is reachable (an admin's pin,
   * e.g. the robot's building).
   */
  private final String pin;

  private final ScheduledExecutorService loop =
      Executors.newSingleThreadScheduledExecutor(
          r -> {
            Thread t = new Thread(r, "relay-link");
            t.setDaemon(true);
            return t;
          });

  // ---- relay-link thread state ----
  private List<RelayInfo> relays = List.of();
  private RelayProbe.Report report = RelayProbe.Report.EMPTY;

  /** The relay used in each region where a choice was made (the home region's least-loaded one). */
  private final Map<String, RelayInfo> chosen = new HashMap<>();

  private String home;
  private final Map<String, Connection> connections = new HashMap<>();

  /** Peers (base64 node key) and the region each is homed on. */
  private Map<String, String> peerRegions = Map.of();

  private long probeGeneration;

  // ---- read on the packet path: rebuilt on every change ----
  private volatile Map<ByteBuffer, RelayClient> routes = Map.of();
  private volatile Map<ByteBuffer, String> routeRegions = Map.of();
  private volatile RelayClient homeClient;
  private volatile String homeRegion;

  RelayConnections(
      Inbound inbound,
      HttpClient http,
      byte[] nodePrivateKey,
      String pin,
      Consumer<String> onHomeChanged) {
    this.inbound = inbound;
    this.http = http;
    this.nodePrivateKey = nodePrivateKey.clone();
    this.nodePublicKey = Curve25519.publicKey(nodePrivateKey);
    this.pin = pin == null || pin.isBlank() ? null : pin.strip();
    this.onHomeChanged = onHomeChanged;
    long reprobe = AgentTiming.RELAY_REPROBE_INTERVAL.toMillis();
    loop.scheduleWithFixedDelay(
        () -> {
          if (!relays.isEmpty()) {
            probeAndChooseHome();
          }
        },
        reprobe,
        reprobe,
        TimeUnit.MILLISECONDS);
    long silent = AgentTiming.RELAY_SILENT_PING.toMillis();
    loop.scheduleWithFixedDelay(this::checkSilence, silent, silent, TimeUnit.MILLISECONDS);
  }

  // ---- from the agent ----------------------------------------------------------------------

  /**
   * Use {@code map} (from the network map; empty: the login server's own relay as region
   * "default"). Idempotent for the same map.
   */
  void setRelayMap(List<RelayInfo> map, URI loginServer) {
    List<RelayInfo> effective =
        map == null || map.isEmpty()
            ? List.of(new RelayInfo(DEFAULT_REGION, loginServer.toString(), null, null))
            : map.stream()
                .map(
                    r ->
                        r.url() == null
                                || r.url().isBlank()
                                || namesAnotherHost(r.url(), loginServer)
                            ? new RelayInfo(
                                r.region(), loginServer.toString(), r.key(), r.stunPort())
                            : r)
                .toList();
    loop.execute(
        () -> {
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
            setHome(null); // its relay left the map: choose again
            rebuildRoutes();
          }
          probeAndChooseHome();
        });
  }

  /**
   * A loopback relay URL while the login server is elsewhere: it names the server's own host, not
   * ours, so the login server's URL stands in for it (a server never advertises one itself).
   */
  private static boolean namesAnotherHost(String relayUrl, URI loginServer) {
    try {
      return ControlConnection.isLoopback(URI.create(relayUrl))
          && !ControlConnection.isLoopback(loginServer);
    } catch (IllegalArgumentException e) {
      return false;
    }
  }

  /** The peers and their home regions (null or unknown region: reached through our home). */
  void setPeerRegions(Map<String, String> regions) {
    Map<String, String> copy = new HashMap<>();
    regions.forEach(
        (k, v) -> {
          if (v != null) {
            copy.put(k, v);
          }
        });
    loop.execute(
        () -> {
          peerRegions = copy;
          reconcileConnections();
        });
  }

  void disconnect() {
    loop.execute(
        () -> {
          relays = List.of();
          setHome(null);
          probeGeneration++;
          connections.values().forEach(Connection::close);
          connections.clear();
          rebuildRoutes();
        });
  }

  /** The home region, or null while there is none. Any thread. */
  String homeRegion() {
    return homeRegion;
  }

  /**
   * The region packets to {@code peerKey} go through now, or null when no relay connection is up.
   * Any thread.
   */
  String regionFor(byte[] peerKey) {
    String r = routeRegions.get(ByteBuffer.wrap(peerKey));
    if (r != null) {
      return r;
    }
    RelayClient h = homeClient;
    return h != null && h.isOpen() ? homeRegion : null;
  }

  /** Measures every relay now (for netcheck); does not move the home. */
  CompletableFuture<List<RelayProbe.RelayResult>> measure() {
    CompletableFuture<List<RelayInfo>> map = new CompletableFuture<>();
    loop.execute(() -> map.complete(relays));
    return map.thenCompose(
        list ->
            CompletableFuture.supplyAsync(
                () -> RelayProbe.run(list, false, http).results(),
                task -> Thread.ofVirtual().start(task)));
  }

  /** Connections made again to each region after its first; any thread may read it. */
  private final ConcurrentHashMap<String, LongAdder> reconnects = new ConcurrentHashMap<>();

  /** Reconnects by region, for the node's metrics. */
  Map<String, Long> reconnects() {
    Map<String, Long> out = new TreeMap<>();
    reconnects.forEach((region, n) -> out.put(region, n.sum()));
    return out;
  }

  // ---- PeerPaths.Relay (packet threads) ----------------------------------------------------

  @Override
  public boolean canSend(byte[] peerKey) {
    return clientFor(peerKey) != null;
  }

  @Override
  public boolean send(byte[] peerKey, byte[] message, int offset, int length) {
    RelayClient c = clientFor(peerKey);
    return c != null && c.send(peerKey, message, offset, length);
  }

  private RelayClient clientFor(byte[] peerKey) {
    RelayClient c = routes.get(ByteBuffer.wrap(peerKey));
    return c != null && c.isOpen() ? c : homeClient;
  }

  // ---- homing (relay-link thread) ----------------------------------------------------------

  /**
   * The relay used for {@code region}: the one chosen there, or its first in the map; null if the
   * region is not in the map.
   */
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

  /**
   * Whether packets for a peer homed in {@code region} can go through our home relay (both in the
   * mesh).
   */
  private boolean throughHome(String region) {
    RelayInfo h = home == null ? null : relay(home);
    return h != null
        && h.meshed()
        && relays.stream().anyMatch(r -> r.region().equals(region) && r.meshed());
  }

  private void setHome(String region) {
    home = region;
    homeRegion = region;
  }

  private void probeAndChooseHome() {
    long gen = ++probeGeneration;
    List<RelayInfo> list = relays;
    if (home == null && list.size() == 1) {
      // Nothing to choose between: connect at once, measure for the record.
      apply(HomeRelayPolicy.choose(list.getFirst().region(), list, report, nodePublicKey));
    }
    Thread.ofVirtual()
        .start(
            () -> {
              RelayProbe.Report measured = RelayProbe.run(list, true, http);
              measured.results().stream()
                  .filter(r -> r.millis() == null)
                  .forEach(
                      r ->
                          LOG.info(
                              "relay "
                                  + r.relay().region()
                                  + " ("
                                  + r.relay().url()
                                  + ") unreachable: "
                                  + r.error()));
              loop.execute(
                  () -> {
                    if (gen != probeGeneration) {
                      return;
                    }
                    report = measured;
                    RelayInfo homeRelay = home == null ? null : chosen.get(home);
                    HomeRelayPolicy.Choice choice =
                        HomeRelayPolicy.decide(relays, home, homeRelay, report, pin, nodePublicKey);
                    if (choice != null) {
                      apply(choice);
                    }
                  });
            });
  }

  private void apply(HomeRelayPolicy.Choice choice) {
    if (choice.region().equals(home)
        && (choice.relay() == null || choice.relay().equals(chosen.get(home)))) {
      return;
    }
    if (choice.relay() != null) {
      chosen.put(choice.region(), choice.relay());
    }
    Double millis = report.regionLatency().get(choice.region());
    long inRegion = relays.stream().filter(r -> r.region().equals(choice.region())).count();
    LOG.info(
        "home relay region: "
            + choice.region()
            + (millis != null ? String.format(" (%.1f ms)", millis) : "")
            + (inRegion > 1 && choice.relay() != null
                ? ", relay "
                    + choice.relay().url()
                    + " ("
                    + report.loads().getOrDefault(choice.relay().url(), -1)
                    + " nodes)"
                : ""));
    setHome(choice.region());
    reconcileConnections();
    onHomeChanged.accept(choice.region());
  }

  // ---- connections (relay-link thread) -----------------------------------------------------

  /** Keeps a connection to the home region and to every region a peer lives in; closes the rest. */
  private void reconcileConnections() {
    Map<String, Boolean> wanted = new HashMap<>();
    if (home != null && relay(home) != null) {
      wanted.put(home, true);
    }
    // Only once the home is chosen: before, every peer's region would look out of reach and be
    // dialled for a moment, and a relay a node touches briefly claims it in the mesh.
    for (String region : home == null ? List.<String>of() : peerRegions.values()) {
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
    Map<ByteBuffer, RelayClient> r = new HashMap<>();
    Map<ByteBuffer, String> names = new HashMap<>();
    peerRegions.forEach(
        (key, region) -> {
          Connection c = connections.get(region);
          if (c != null && c.client != null && !region.equals(home) && !throughHome(region)) {
            ByteBuffer k = ByteBuffer.wrap(Base64.getDecoder().decode(key));
            r.put(k, c.client);
            names.put(k, region);
          }
        });
    routes = r;
    routeRegions = names;
    homeClient = h == null ? null : h.client;
  }

  /**
   * Pings quiet connections and drops ones that stayed silent, so a relay that vanished is noticed
   * within seconds.
   */
  private void checkSilence() {
    for (Connection c : connections.values()) {
      RelayClient client = c.client;
      if (client == null || !client.isOpen()) {
        continue;
      }
      long silent = client.silentNanos();
      if (silent > AgentTiming.RELAY_SILENT_DEAD.toNanos()) {
        LOG.warn(
            "relay region "
                + c.info.region()
                + " silent for "
                + TimeUnit.NANOSECONDS.toSeconds(silent)
                + " s: reconnecting");
        client.close();
      } else if (silent > AgentTiming.RELAY_SILENT_PING.toNanos()) {
        client.ping();
      }
    }
  }

  /**
   * One region's connection: dials, redials with backoff, and hands what arrives to the inbound
   * side.
   */
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

    /** Whether this region's connection was ever made (later ones count as reconnects). */
    private boolean everConnected;

    void dial() {
      if (closed) {
        return;
      }
      byte[] expectedKey = info.key() == null ? null : Base64.getDecoder().decode(info.key());
      RelayClient.connect(
              http,
              URI.create(info.url()),
              nodePrivateKey,
              expectedKey,
              new RelayClient.Listener() {
                @Override
                public void onPacket(byte[] srcKey, byte[] packet, int len) {
                  inbound.receive(srcKey, packet, len);
                }

                @Override
                public void onRestarting(long reconnectInMillis, long tryForMillis) {
                  loop.execute(
                      () -> {
                        attempt = 0;
                        restartDelayMillis =
                            Math.max(
                                AgentTiming.RELAY_MIN_RESTART_DELAY.toMillis(), reconnectInMillis);
                        restartUntilNanos =
                            System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(tryForMillis);
                      });
                }

                @Override
                public void onHealth(String problem) {
                  if (problem.isEmpty()) {
                    LOG.info("relay region " + info.region() + " is healthy again");
                  } else {
                    LOG.warn("relay region " + info.region() + ": " + problem);
                  }
                }

                @Override
                public void onClosed(String reason) {
                  loop.execute(() -> lost(reason));
                }
              })
          .whenComplete(
              (c, failure) ->
                  loop.execute(
                      () -> {
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
                        if (everConnected) {
                          reconnects
                              .computeIfAbsent(info.region(), r -> new LongAdder())
                              .increment();
                        }
                        everConnected = true;
                        client = c;
                        rebuildRoutes();
                        LOG.info(
                            "connected to relay region "
                                + info.region()
                                + " at "
                                + info.url()
                                + " ("
                                + c.transport()
                                + ")");
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
        probeAndChooseHome(); // the home went away (or keeps failing after a restart): a reachable
        // relay may take over
      }
      // A relay that said it is restarting is retried at the pace it asked for while it said to
      // keep trying.
      long backoff =
          announcedRestart
              ? restartDelayMillis
              : Math.min(
                  AgentTiming.RELAY_MAX_BACKOFF.toMillis(),
                  AgentTiming.RELAY_FIRST_BACKOFF.toMillis() << Math.min(attempt++, 5));
      backoff += ThreadLocalRandom.current().nextLong(backoff / 5 + 1);
      LOG.warn(
          "relay region "
              + info.region()
              + ": connection lost ("
              + reason
              + "); retrying in "
              + backoff
              + " ms");
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
      return String.valueOf(info);
    }
  }

  @Override
  public void close() {
    loop.execute(
        () -> {
          probeGeneration++;
          connections.values().forEach(Connection::close);
          connections.clear();
          homeClient = null;
          routes = Map.of();
        });
    loop.shutdown();
  }
}
