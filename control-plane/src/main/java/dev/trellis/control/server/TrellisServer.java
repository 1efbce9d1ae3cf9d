package dev.trellis.control.server;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import dev.trellis.control.admin.Admin;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.cluster.ClusterSettings;
import dev.trellis.control.cluster.ClusterStatus;
import dev.trellis.control.console.ConsoleSessions;
import dev.trellis.control.map.NetworkMap;
import dev.trellis.control.metrics.ServerMetrics;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeDirectory;
import dev.trellis.control.relay.RelayServer;
import dev.trellis.control.relay.RelaySettings;
import dev.trellis.control.session.ControlSession;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.dataplane.metrics.MetricsEndpoint;
import dev.trellis.persistence.PersistenceSettings;
import dev.trellis.persistence.PostgresSchema;
import dev.trellis.proto.control.ControlHandshake;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.SortedSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.Route;

/**
 * The coordination server: one actor system whose {@link ServerGuardian} wires the registries, the
 * node directory, the network map and (relay role) the relay, and one HTTP port ({@link
 * ListeningPorts}) serving GET /key, the control channel (/control), the relay and the admin API,
 * next to the STUN server.
 *
 * <p>Threads: {@link #start} runs on the caller's thread and waits on asks (bounded), never on
 * polling; the fields are final and set before {@code start} returns, so any thread may use the
 * server afterwards. {@link #close()} is called once, by the owner or its shutdown hook.
 */
public final class TrellisServer implements AutoCloseable {
  /** How long the guardian may take to answer what it wired. */
  private static final Duration WIRING_TIMEOUT = Duration.ofSeconds(30);

  /** How long a member waits for a control member to list the known nodes. */
  private static final Duration CONTROL_TIMEOUT = Duration.ofSeconds(60);

  private final ServerSettings settings;
  private final ActorSystem<ServerGuardian.Command> system;
  private final ListeningPorts ports;
  private final byte[] publicKey;
  private final Services services;
  private final RelayServer relay;
  private final DataDirLock dataDirLock;
  private final ServerMetrics metrics;
  private final MetricsEndpoint metricsEndpoint; // null: trellis.metrics.listen is empty

  /** Everything the HTTP layer and the admin protocol reach. */
  public record Services(
      ActorRef<UserRegistry.Command> users,
      ActorRef<AuthKeyRegistry.Command> authKeys,
      ActorRef<ApiKeyRegistry.Command> apiKeys,
      ActorRef<AddressAllocator.Command> allocator,
      ActorRef<NodeDirectory.Command> nodes,
      ActorRef<NetworkMap.Command> map,
      ActorRef<Admin.Command> admin) {}

  private TrellisServer(
      ServerSettings settings,
      ActorSystem<ServerGuardian.Command> system,
      ListeningPorts ports,
      byte[] publicKey,
      ServerGuardian.Wiring wiring,
      DataDirLock dataDirLock,
      ServerMetrics metrics,
      MetricsEndpoint metricsEndpoint) {
    this.settings = settings;
    this.metrics = metrics;
    this.metricsEndpoint = metricsEndpoint;
    this.dataDirLock = dataDirLock;
    this.system = system;
    this.ports = ports;
    this.publicKey = publicKey;
    this.services = wiring.services();
    this.relay = wiring.relay();
  }

  public static TrellisServer start(ServerSettings settings) throws IOException {
    Files.createDirectories(settings.dataDir());
    Files.setPosixFilePermissions(settings.dataDir(), PosixFilePermissions.fromString("rwx------"));
    DataDirLock dataDirLock = DataDirLock.acquire(settings.dataDir());
    byte[] privateKey;
    ListeningPorts ports;
    try {
      privateKey = ServerKey.loadOrCreate(settings.dataDir());
      ports = openStun(settings);
    } catch (IOException | RuntimeException e) {
      dataDirLock.close();
      throw e;
    }
    ControlHandshake.Server handshake = new ControlHandshake.Server(privateKey);

    ServerMetrics metrics = new ServerMetrics(true);
    if (ports.stunPort() >= 0) {
      metrics.watchStun(ports::stunCounters);
    }
    ClusterSettings cluster;
    ActorSystem<ServerGuardian.Command> system;
    try {
      Config config = journalConfig(settings).withFallback(settings.config());
      if (settings.journal().postgres()) {
        ensureSchema(config);
      }
      RelaySettings relaySettings;
      try {
        relaySettings = RelaySettings.from(settings.config());
        cluster = ClusterSettings.from(settings.config());
      } catch (IllegalArgumentException | ConfigException e) {
        throw new IOException("bad cluster configuration: " + e.getMessage(), e);
      }
      String serverKey = Base64.getEncoder().encodeToString(handshake.publicKey());
      Integer stunPort = ports.stunPort() < 0 ? null : ports.stunPort();
      system =
          ActorSystem.create(
              ServerGuardian.create(
                  new ServerGuardian.Setup(
                      settings,
                      cluster,
                      relaySettings,
                      privateKey,
                      serverKey,
                      stunPort,
                      Clock.systemUTC(),
                      metrics)),
              ClusterSettings.SYSTEM_NAME,
              cluster.pekkoConfig().withFallback(config));
    } catch (IOException | RuntimeException e) {
      ports.close();
      dataDirLock.close();
      throw e;
    }
    MetricsEndpoint metricsEndpoint = null;
    try {
      ServerGuardian.Wiring wiring = awaitWiring(system);
      Services services = wiring.services();
      spawnAllNodes(system, services);
      ControlSession.Services sessionServices =
          new ControlSession.Services(
              handshake,
              wiring.registries(),
              services.map(),
              Clock.systemUTC(),
              metrics,
              wiring.quality());
      ControlRoute control =
          cluster.holds(ClusterSettings.ROLE_CONTROL)
              ? new ControlRoute(system, sessionServices)
              : null;
      Route routes =
          new Routes(
                  handshake.publicKey(),
                  control,
                  wiring.relay(),
                  services,
                  system,
                  new ConsoleSessions(Clock.systemUTC()),
                  settings.tlsKeystore() != null)
              .routes();
      ports.bind(
          system,
          routes,
          new ListeningPorts.HttpPort(
              settings.listenHost(),
              settings.listenPort(),
              settings.tlsKeystore(),
              settings.tlsKeystorePassword()));
      metrics.watchCluster(system);
      metricsEndpoint =
          settings.metricsListen().isEmpty()
              ? null
              : MetricsEndpoint.start(
                  metrics.registry(), settings.metricsListen(), "trellis.metrics.listen");
      String url = url(settings, ports.port());
      system.tell(new ServerGuardian.Serving(url));
      LocalAdminAccess.ensure(
          settings.dataDir(), url, services.apiKeys(), system.scheduler(), Clock.systemUTC());
      return new TrellisServer(
          settings,
          system,
          ports,
          handshake.publicKey(),
          wiring,
          dataDirLock,
          metrics,
          metricsEndpoint);
    } catch (Exception e) {
      if (metricsEndpoint != null) {
        metricsEndpoint.close();
      }
      ports.close();
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().join();
      dataDirLock.close();
      if (e instanceof MetricsEndpoint.ListenFailure metricsFailure) {
        throw metricsFailure;
      }
      throw ListeningPorts.startFailure("server", settings.listenHost(), settings.listenPort(), e);
    }
  }

  /** The tables must exist before the first entity recovers. */
  private static void ensureSchema(Config config) throws IOException {
    ActorSystem<Void> bootstrap = ActorSystem.create(Behaviors.empty(), "trellis-schema", config);
    try {
      PostgresSchema.ensure(bootstrap, Duration.ofSeconds(60));
    } catch (IllegalStateException e) {
      throw new IOException(e.getMessage(), e);
    } finally {
      bootstrap.terminate();
      bootstrap.getWhenTerminated().toCompletableFuture().join();
    }
  }

  private static Config journalConfig(ServerSettings settings) {
    ServerSettings.Journal j = settings.journal();
    return j.postgres()
        ? PersistenceSettings.forPostgres(j.url(), j.user(), j.password(), j.maxConnections())
        : PersistenceSettings.forDataDir(
            settings.dataDir(), nativeLevelDb(settings.levelDbNative()));
  }

  /**
   * The ports, STUN open unless trellis.stun.enabled is false; HTTP binds once the routes exist.
   */
  private static ListeningPorts openStun(ServerSettings settings) throws IOException {
    if (!settings.stunEnabled()) {
      return ListeningPorts.open(null);
    }
    try {
      return ListeningPorts.open(
          InetSocketAddress.createUnresolved(settings.stunHost(), settings.stunPort()));
    } catch (IOException e) {
      String cause = e.getCause() != null ? e.getCause().getMessage() : e.getMessage();
      throw new IOException(
          "cannot start STUN on UDP "
              + settings.stunHost()
              + ":"
              + settings.stunPort()
              + " ("
              + cause
              + "); change trellis.stun.listen or set trellis.stun.enabled = false",
          e);
    }
  }

  private static boolean nativeLevelDb(String setting) {
    return switch (setting) {
      case "on" -> true;
      case "off" -> false;
      case "auto" -> PersistenceSettings.nativeLevelDbSupported();
      default ->
          throw new IllegalArgumentException(
              "trellis.leveldb-native must be on, off or auto, not '" + setting + "'");
    };
  }

  /** What the guardian wired; it answers as soon as it has started. */
  private static ServerGuardian.Wiring awaitWiring(ActorSystem<ServerGuardian.Command> system)
      throws Exception {
    try {
      return AskPattern.ask(
              system, ServerGuardian.GetWiring::new, WIRING_TIMEOUT, system.scheduler())
          .toCompletableFuture()
          .get(WIRING_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    } catch (ExecutionException | TimeoutException e) {
      throw new IllegalStateException("actor system did not start", e);
    }
  }

  /** Every known node recovers now, so the map is complete before nodes reconnect. */
  private static void spawnAllNodes(ActorSystem<?> system, Services services) throws Exception {
    List<Long> ids;
    try {
      ids =
          AskPattern.ask(
                  services.allocator(),
                  AddressAllocator.ListAllocations::new,
                  CONTROL_TIMEOUT,
                  system.scheduler())
              .toCompletableFuture()
              .get(CONTROL_TIMEOUT.toSeconds(), TimeUnit.SECONDS)
              .stream()
              .map(AddressAllocator.Allocation::nodeId)
              .toList();
    } catch (ExecutionException | TimeoutException e) {
      // A relay-only member starting before any control member is up ends here.
      throw new IOException(
          "no member with the control role answered within 60 s; start one, or check "
              + "trellis.cluster.seed-nodes",
          e);
    }
    services.nodes().tell(new NodeDirectory.SpawnAll(ids));
  }

  /** The configured server URL; listening on port 0, with the port that was bound. */
  private static String url(ServerSettings settings, int boundPort) {
    return settings.listenPort() == 0
        ? settings.serverUrl().replaceAll(":0$", ":" + boundPort)
        : settings.serverUrl();
  }

  /**
   * What a clean shutdown tells relay clients: come back in a second, and keep trying for a minute.
   */
  static final Duration RESTART_RECONNECT = Duration.ofSeconds(1);

  static final Duration RESTART_TRY_FOR = Duration.ofMinutes(1);

  public String url() {
    return url(settings, port());
  }

  public int port() {
    return ports.port();
  }

  /** This member's cluster roles (control, relay). */
  public SortedSet<String> roles() {
    return ClusterStatus.trellisRoles(Cluster.get(system).selfMember());
  }

  /** The STUN server's UDP port, or -1 when trellis.stun.enabled is false. */
  public int stunPort() {
    return ports.stunPort();
  }

  public String publicKeyBase64() {
    return Base64.getEncoder().encodeToString(publicKey);
  }

  public Services services() {
    return services;
  }

  /**
   * The relay at GET /relay, or null on a member without the relay role (or with {@code
   * trellis.relay.enabled = false}).
   */
  public RelayServer relay() {
    return relay;
  }

  /** The metrics this server serves at trellis.metrics.listen. */
  public ServerMetrics metrics() {
    return metrics;
  }

  /** The port /metrics is served on, or -1 when trellis.metrics.listen is empty. */
  public int metricsPort() {
    return metricsEndpoint == null ? -1 : metricsEndpoint.port();
  }

  public ActorSystem<?> system() {
    return system;
  }

  public void awaitTermination() throws InterruptedException {
    system.getWhenTerminated().toCompletableFuture().join();
  }

  @Override
  public void close() {
    if (relay != null) {
      relay.announceRestart(RESTART_RECONNECT, RESTART_TRY_FOR);
      if (relay.mesh() != null) {
        relay.mesh().close();
      }
    }
    if (metricsEndpoint != null) {
      metricsEndpoint.close();
    }
    // STUN, then HTTP: open connections (the relay's notices already queued) get up to a second.
    ports.close();
    system.terminate();
    system.getWhenTerminated().toCompletableFuture().join();
    dataDirLock.close();
  }

  static HttpResponse json(int status, String body) {
    return HttpResponse.create()
        .withStatus(StatusCodes.get(status))
        .withEntity(ContentTypes.APPLICATION_JSON, body);
  }
}
