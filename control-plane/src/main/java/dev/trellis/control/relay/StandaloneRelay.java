package dev.trellis.control.relay;

import com.typesafe.config.ConfigFactory;
import dev.trellis.control.metrics.ServerMetrics;
import dev.trellis.control.server.ListeningPorts;
import dev.trellis.control.server.ServerKey;
import dev.trellis.dataplane.metrics.MetricsEndpoint;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.Route;

/**
 * A relay on its own ({@code trellis relay}), for a building that should not depend on the
 * coordination server's host for its relayed traffic: {@code GET /relay} (raw upgrade or
 * WebSocket), {@code GET /key}, {@code GET /health} and, optionally, STUN, on the same {@link
 * ListeningPorts} as {@code trellis server}. It keeps its own static key in its data directory and
 * admits the node keys the coordination server says are live ({@link ControlPlaneNodeKeys}). The
 * coordination server advertises it in the relay map through {@code trellis.relay.others}.
 *
 * <p>Threads: {@link #start} runs on the caller's thread; the fields are final and set before it
 * returns. Its actor system has no actors of its own to wire (an empty guardian): the relay's
 * connection actors are the {@link RelayServer}'s, the node-key re-check runs on the authority's
 * timer thread. {@link #close()} is called once, by the owner or its shutdown hook.
 */
public final class StandaloneRelay implements AutoCloseable {
  /**
   * What {@code trellis relay} was asked to run. {@code stunPort} null: no STUN; {@code
   * metricsListen} null: no /metrics.
   */
  public record Settings(
      String listenHost,
      int listenPort,
      Path dataDir,
      String region,
      URI loginServer,
      String apiKey,
      Integer stunPort,
      int maxQueue,
      String metricsListen) {
    public Settings {
      if (!RelaySettings.REGION.matcher(region).matches()) {
        throw new IllegalArgumentException(
            "region must be 1-64 letters, digits, '.', '_' or '-', not '" + region + "'");
      }
      if (loginServer.getHost() == null
          || !("http".equals(loginServer.getScheme()) || "https".equals(loginServer.getScheme()))) {
        throw new IllegalArgumentException(
            "--login-server must be an http:// or https:// URL, not '" + loginServer + "'");
      }
      if (apiKey == null || apiKey.isBlank()) {
        throw new IllegalArgumentException(
            "an API key is needed (create one with: trellis apikeys create)");
      }
    }
  }

  /**
   * What a clean shutdown tells relay clients: come back in a second, and keep trying for a minute.
   */
  private static final Duration RESTART_RECONNECT = Duration.ofSeconds(1);

  private static final Duration RESTART_TRY_FOR = Duration.ofMinutes(1);
  private static final Duration TERMINATE_TIMEOUT = Duration.ofSeconds(30);

  private final ActorSystem<Void> system;
  private final ListeningPorts ports;
  private final RelayServer relay;
  private final ControlPlaneNodeKeys authority;
  private final byte[] publicKey;
  private final MetricsEndpoint metricsEndpoint; // null: no --metrics-listen

  private StandaloneRelay(
      ActorSystem<Void> system,
      ListeningPorts ports,
      RelayServer relay,
      ControlPlaneNodeKeys authority,
      byte[] publicKey,
      MetricsEndpoint metricsEndpoint) {
    this.metricsEndpoint = metricsEndpoint;
    this.system = system;
    this.ports = ports;
    this.relay = relay;
    this.authority = authority;
    this.publicKey = publicKey;
  }

  public static StandaloneRelay start(Settings settings) throws IOException {
    byte[] privateKey;
    try {
      if (!Files.isDirectory(settings.dataDir())) {
        Files.createDirectories(
            settings.dataDir(),
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
      }
      privateKey = ServerKey.loadOrCreate(settings.dataDir());
    } catch (IOException e) {
      throw new IOException(
          "cannot read or create the relay key in " + settings.dataDir() + ": " + e, e);
    }
    byte[] publicKey = Curve25519.publicKey(privateKey);
    ListeningPorts ports =
        ListeningPorts.open(
            settings.stunPort() == null
                ? null
                : new InetSocketAddress(settings.listenHost(), settings.stunPort()));
    ActorSystem<Void> system =
        ActorSystem.create(Behaviors.empty(), "trellis-relay", ConfigFactory.load());
    ControlPlaneNodeKeys authority =
        new ControlPlaneNodeKeys(
            HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5))
                .build(),
            settings.loginServer(),
            settings.apiKey());
    MetricsEndpoint metricsEndpoint = null;
    try {
      RelayServer relay =
          new RelayServer(
              system,
              new RelaySettings(true, settings.region(), "", settings.maxQueue(), List.of()),
              privateKey,
              authority);
      ports.bind(
          system,
          new Routes(relay, publicKey).routes(),
          ListeningPorts.HttpPort.plain(settings.listenHost(), settings.listenPort()));
      if (settings.metricsListen() != null) {
        ServerMetrics metrics = new ServerMetrics(true);
        metrics.watchRelay(relay.registry(), () -> null);
        if (ports.stunPort() >= 0) {
          metrics.watchStun(ports::stunCounters);
        }
        metricsEndpoint =
            MetricsEndpoint.start(metrics.registry(), settings.metricsListen(), "--metrics-listen");
      }
      return new StandaloneRelay(system, ports, relay, authority, publicKey, metricsEndpoint);
    } catch (Exception e) {
      if (metricsEndpoint != null) {
        metricsEndpoint.close();
      }
      authority.close();
      ports.close();
      system.terminate();
      if (e instanceof MetricsEndpoint.ListenFailure metricsFailure) {
        throw metricsFailure;
      }
      throw ListeningPorts.startFailure("relay", settings.listenHost(), settings.listenPort(), e);
    }
  }

  private static final class Routes extends AllDirectives {
    private final RelayServer relay;
    private final byte[] publicKey;

    Routes(RelayServer relay, byte[] publicKey) {
      this.relay = relay;
      this.publicKey = publicKey;
    }

    Route routes() {
      return concat(
          path(
              "key",
              () ->
                  get(
                      () ->
                          complete(
                              json(
                                  "{\"publicKey\":\""
                                      + Base64.getEncoder().encodeToString(publicKey)
                                      + "\"}")))),
          path(
              "health",
              () ->
                  get(
                      () ->
                          complete(
                              json(
                                  "{\"status\":\"ok\",\"region\":\""
                                      + relay.settings().region()
                                      + "\"}")))),
          relay.route());
    }

    private static HttpResponse json(String body) {
      return HttpResponse.create().withEntity(ContentTypes.APPLICATION_JSON, body);
    }
  }

  public int port() {
    return ports.port();
  }

  /** The port /metrics is served on, or -1 without --metrics-listen. */
  public int metricsPort() {
    return metricsEndpoint == null ? -1 : metricsEndpoint.port();
  }

  /** The STUN server's UDP port, or -1 without one. */
  public int stunPort() {
    return ports.stunPort();
  }

  public String publicKeyBase64() {
    return Base64.getEncoder().encodeToString(publicKey);
  }

  public RelayServer relay() {
    return relay;
  }

  public void awaitTermination() {
    system.getWhenTerminated().toCompletableFuture().join();
  }

  @Override
  public void close() {
    if (metricsEndpoint != null) {
      metricsEndpoint.close();
    }
    authority.close();
    relay.announceRestart(RESTART_RECONNECT, RESTART_TRY_FOR);
    ports.close();
    system.terminate();
    system
        .getWhenTerminated()
        .toCompletableFuture()
        .orTimeout(TERMINATE_TIMEOUT.toSeconds(), TimeUnit.SECONDS)
        .exceptionally(e -> null)
        .join();
  }
}
