package dev.trellis.control.relay;

import com.typesafe.config.ConfigFactory;
import dev.trellis.control.server.ServerKey;
import dev.trellis.control.stun.StunServer;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.Route;

/**
 * A relay on its own ({@code trellis relay}), for a building that should not depend on the
 * coordination server's host for its relayed traffic: {@code GET /relay} (raw upgrade or
 * WebSocket), {@code GET /key}, {@code GET /health} and, optionally, STUN. It keeps its own static
 * key in its data directory and admits the node keys the coordination server says are live
 * ({@link ControlPlaneNodeKeys}). The coordination server advertises it in the relay map through
 * {@code trellis.relay.others}.
 */
public final class StandaloneRelay extends AllDirectives implements AutoCloseable {
    /** What {@code trellis relay} was asked to run. {@code stunPort} null: no STUN. */
    public record Settings(String listenHost, int listenPort, Path dataDir, String region, URI loginServer, String apiKey,
                           Integer stunPort, int maxQueue) {
        public Settings {
            if (!RelaySettings.REGION.matcher(region).matches()) {
                throw new IllegalArgumentException("region must be 1-64 letters, digits, '.', '_' or '-', not '" + region + "'");
            }
            if (loginServer.getHost() == null || !("http".equals(loginServer.getScheme()) || "https".equals(loginServer.getScheme()))) {
                throw new IllegalArgumentException("--login-server must be an http:// or https:// URL, not '" + loginServer + "'");
            }
            if (apiKey == null || apiKey.isBlank()) {
                throw new IllegalArgumentException("an API key is needed (create one with: trellis apikeys create)");
            }
        }
    }

    private final ActorSystem<Void> system;
    private final ServerBinding binding;
    private final RelayServer relay;
    private final StunServer stun;
    private final ControlPlaneNodeKeys authority;
    private final byte[] publicKey;

    private StandaloneRelay(ActorSystem<Void> system, ServerBinding binding, RelayServer relay, StunServer stun,
                            ControlPlaneNodeKeys authority, byte[] publicKey) {
        this.system = system;
        this.binding = binding;
        this.relay = relay;
        this.stun = stun;
        this.authority = authority;
        this.publicKey = publicKey;
    }

    public static StandaloneRelay start(Settings settings) throws IOException {
        byte[] privateKey;
        try {
            if (!java.nio.file.Files.isDirectory(settings.dataDir())) {
                java.nio.file.Files.createDirectories(settings.dataDir(), java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                        java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
            }
            privateKey = ServerKey.loadOrCreate(settings.dataDir());
        } catch (IOException e) {
            throw new IOException("cannot read or create the relay key in " + settings.dataDir() + ": " + e, e);
        }
        byte[] publicKey = Curve25519.publicKey(privateKey);
        StunServer stun = settings.stunPort() == null ? null : StunServer.start(new InetSocketAddress(settings.listenHost(), settings.stunPort()));
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "trellis-relay", ConfigFactory.load());
        ControlPlaneNodeKeys authority = new ControlPlaneNodeKeys(
                HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build(),
                settings.loginServer(), settings.apiKey());
        try {
            RelayServer relay = new RelayServer(system, new RelaySettings(true, settings.region(), "", settings.maxQueue(), List.of()),
                    privateKey, authority);
            Route routes = new Routes(relay, publicKey).routes();
            ServerBinding binding = Http.get(system).newServerAt(settings.listenHost(), settings.listenPort()).bind(routes)
                    .toCompletableFuture().get(30, TimeUnit.SECONDS);
            return new StandaloneRelay(system, binding, relay, stun, authority, publicKey);
        } catch (Exception e) {
            authority.close();
            if (stun != null) {
                stun.close();
            }
            system.terminate();
            throw new IOException("cannot start the relay on " + settings.listenHost() + ":" + settings.listenPort() + ": "
                    + (e.getCause() != null ? e.getCause().getMessage() : e.getMessage()), e);
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
                    path("key", () -> get(() -> complete(json("{\"publicKey\":\"" + Base64.getEncoder().encodeToString(publicKey) + "\"}")))),
                    path("health", () -> get(() -> complete(json("{\"status\":\"ok\",\"region\":\"" + relay.settings().region() + "\"}")))),
                    relay.route());
        }

        private static HttpResponse json(String body) {
            return HttpResponse.create().withEntity(ContentTypes.APPLICATION_JSON, body);
        }
    }

    public int port() {
        return binding.localAddress().getPort();
    }

    /** The STUN server's UDP port, or -1 without one. */
    public int stunPort() {
        return stun == null ? -1 : stun.port();
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
        authority.close();
        relay.announceRestart(Duration.ofSeconds(1), Duration.ofMinutes(1));
        if (stun != null) {
            stun.close();
        }
        binding.terminate(Duration.ofSeconds(1)).toCompletableFuture().orTimeout(5, TimeUnit.SECONDS).exceptionally(e -> null).join();
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().orTimeout(30, TimeUnit.SECONDS).exceptionally(e -> null).join();
    }
}
