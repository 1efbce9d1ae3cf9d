package dev.trellis.control.server;

import dev.trellis.control.admin.Admin;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.map.NetworkMap;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.cluster.ShardedRegistry;
import dev.trellis.control.node.NodeDirectory;
import dev.trellis.control.node.NodeEntity;
import org.apache.pekko.actor.typed.pubsub.Topic;
import dev.trellis.control.session.ControlSession;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.control.stun.StunServer;
import dev.trellis.persistence.PersistenceSettings;
import dev.trellis.proto.control.ControlHandshake;
import dev.trellis.proto.control.ControlMessage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.Route;

/**
 * The coordination server: one actor system holding the registries, the node directory and the
 * network map, and one HTTP port serving GET /key, the control channel (/control) and the admin API.
 */
public final class TrellisServer implements AutoCloseable {
    private final ServerSettings settings;
    private final ActorSystem<Void> system;
    private final ServerBinding binding;
    private final byte[] publicKey;
    private final Services services;
    private final dev.trellis.control.relay.RelayServer relay;
    private final StunServer stun;

    /** Everything the HTTP layer and the admin protocol reach. */
    public record Services(ActorRef<UserRegistry.Command> users, ActorRef<AuthKeyRegistry.Command> authKeys,
                           ActorRef<ApiKeyRegistry.Command> apiKeys, ActorRef<AddressAllocator.Command> allocator,
                           ActorRef<NodeDirectory.Command> nodes, ActorRef<NetworkMap.Command> map,
                           ActorRef<Admin.Command> admin) {}

    private TrellisServer(ServerSettings settings, ActorSystem<Void> system, ServerBinding binding, byte[] publicKey, Services services,
                          dev.trellis.control.relay.RelayServer relay, StunServer stun) {
        this.relay = relay;
        this.stun = stun;
        this.settings = settings;
        this.system = system;
        this.binding = binding;
        this.publicKey = publicKey;
        this.services = services;
    }

    public static TrellisServer start(ServerSettings settings) throws IOException {
        Files.createDirectories(settings.dataDir());
        Files.setPosixFilePermissions(settings.dataDir(), PosixFilePermissions.fromString("rwx------"));
        byte[] privateKey = ServerKey.loadOrCreate(settings.dataDir());
        ControlHandshake.Server handshake = new ControlHandshake.Server(privateKey);
        StunServer stun = startStun(settings);

        var config = journalConfig(settings).withFallback(settings.config());
        if (settings.journal().postgres()) {
            // The tables must exist before the first entity recovers.
            ActorSystem<Void> bootstrap = ActorSystem.create(Behaviors.empty(), "trellis-schema", config);
            try {
                dev.trellis.persistence.PostgresSchema.ensure(bootstrap, Duration.ofSeconds(60));
            } catch (IllegalStateException e) {
                throw new IOException(e.getMessage(), e);
            } finally {
                bootstrap.terminate();
                bootstrap.getWhenTerminated().toCompletableFuture().join();
            }
        }
        dev.trellis.control.cluster.ClusterSettings cluster;
        dev.trellis.control.relay.RelaySettings relaySettings;
        try {
            relaySettings = dev.trellis.control.relay.RelaySettings.from(settings.config());
            cluster = dev.trellis.control.cluster.ClusterSettings.from(settings.config());
        } catch (IllegalArgumentException | com.typesafe.config.ConfigException e) {
            if (stun != null) {
                stun.close();
            }
            throw new IOException("bad cluster configuration: " + e.getMessage(), e);
        }
        // The roles decide what this member runs: control = entities, control sessions, a control URL in
        // every node's map; relay = the relay at GET /relay in the relay map and the mesh.
        boolean controlRole = cluster.holds(dev.trellis.control.cluster.ClusterSettings.ROLE_CONTROL);
        boolean relayRole = cluster.holds(dev.trellis.control.cluster.ClusterSettings.ROLE_RELAY);
        config = cluster.pekkoConfig().withFallback(config);
        var holder = new java.util.concurrent.atomic.AtomicReference<Services>();
        ActorSystem<Void> system = ActorSystem.create(Behaviors.setup(ctx -> {
            if (cluster.standalone()) {
                // A cluster of its own: join itself, so cluster features work without any other member.
                var self = org.apache.pekko.cluster.typed.Cluster.get(ctx.getSystem());
                self.manager().tell(org.apache.pekko.cluster.typed.Join.create(self.selfMember().address()));
            }
            // Sharded across the control members; each a single entity for the whole cluster.
            ActorRef<UserRegistry.Command> users = ShardedRegistry.start(ctx, UserRegistry.Command.class, "users", UserRegistry::create);
            ActorRef<AuthKeyRegistry.Command> authKeys = ShardedRegistry.start(ctx, AuthKeyRegistry.Command.class, "authkeys",
                    AuthKeyRegistry::create);
            ActorRef<ApiKeyRegistry.Command> apiKeys = ShardedRegistry.start(ctx, ApiKeyRegistry.Command.class, "apikeys",
                    ApiKeyRegistry::create);
            ActorRef<AddressAllocator.Command> allocator = ShardedRegistry.start(ctx, AddressAllocator.Command.class, "addresses",
                    () -> AddressAllocator.create(settings.ipv4Prefix(), settings.ipv6Prefix()));
            // The map reaps ephemeral nodes through the admin protocol, which also frees the
            // node's addresses and detaches it from its user; the admin actor is spawned after the map.
            var adminRef = new java.util.concurrent.atomic.AtomicReference<ActorRef<Admin.Command>>();
            ActorRef<Topic.Command<NodeEntity.Published>> topic = ctx.spawn(
                    Topic.create(NodeEntity.Published.class, "trellis-node-events"), "node-events-topic");
            ActorRef<Topic.Command<NetworkMap.PresenceChanged>> presence = ctx.spawn(
                    Topic.create(NetworkMap.PresenceChanged.class, "trellis-presence"), "presence-topic");
            ActorRef<NetworkMap.Command> map = ctx.spawn(NetworkMap.create(Clock.systemUTC(), settings.ephemeralTimeout(),
                    nodeId -> adminRef.get().tell(new Admin.DeleteNode(nodeId, ctx.getSystem().ignoreRef())),
                    new ControlMessage.NetworkInfo(settings.ipv4Prefix(), settings.ipv6Prefix()), presence, topic,
                    org.apache.pekko.cluster.typed.Cluster.get(ctx.getSystem()).selfMember().address().toString()), "network-map");
            // Node entities publish to every replica's map through a cluster topic.
            ActorRef<NodeEntity.Published> published = ctx.spawn(forwarder(map), "node-events");
            topic.tell(Topic.subscribe(published));
            ctx.spawn(dev.trellis.control.cluster.TopicWatcher.create(List.of(topic.unsafeUpcast(), presence.unsafeUpcast()),
                    () -> map.tell(new NetworkMap.Resync())), "topic-watcher");
            ActorRef<NodeEntity.Published> publisher = ctx.spawn(Behaviors.<NodeEntity.Published>receiveMessage(p -> {
                topic.tell(Topic.publish(p));
                return Behaviors.same();
            }), "node-publisher");
            ActorRef<NodeDirectory.Command> nodes = ctx.spawn(NodeDirectory.create(ctx.getSystem(), publisher, published), "nodes");
            ActorRef<Admin.Command> admin = ctx.spawn(
                    Admin.create(users, authKeys, apiKeys, allocator, nodes, map, Clock.systemUTC()), "admin");
            adminRef.set(admin);
            holder.set(new Services(users, authKeys, apiKeys, allocator, nodes, map, admin));
            return Behaviors.empty();
        }), dev.trellis.control.cluster.ClusterSettings.SYSTEM_NAME, config);
        try {
            Services services = awaitServices(holder);
            spawnAllNodes(system, services);
            ControlSession.Services sessionServices = new ControlSession.Services(handshake, services.authKeys(), services.users(),
                    services.allocator(), services.nodes(), services.map(), Clock.systemUTC(), system.scheduler());
            ControlRoute control = controlRole ? new ControlRoute(system, sessionServices) : null;
            var relay = relayRole
                    ? new dev.trellis.control.relay.RelayServer(system, relaySettings, privateKey, services.map()) : null;
            if (relay != null) {
                relay.startMesh(); // forwards to and from the other members' relays
            }
            Route routes = new Routes(handshake.publicKey(), control, relay, services, system).routes();
            var serverBuilder = Http.get(system).newServerAt(settings.listenHost(), settings.listenPort());
            if (settings.tlsKeystore() != null) {
                serverBuilder = serverBuilder.enableHttps(org.apache.pekko.http.javadsl.ConnectionContext.httpsServer(
                        ServerTls.sslContext(settings.tlsKeystore(), settings.tlsKeystorePassword())));
            }
            ServerBinding binding = serverBuilder.bind(routes).toCompletableFuture().get(30, TimeUnit.SECONDS);
            String url = settings.serverUrl();
            if (settings.listenPort() == 0) {
                url = url.replaceAll(":0$", ":" + binding.localAddress().getPort());
            }
            // Nodes learn every replica's URL, to log in elsewhere when this one goes away.
            if (controlRole) {
                system.systemActorOf(dev.trellis.control.cluster.ControlEndpoints.endpoint(url), "control-endpoint",
                        org.apache.pekko.actor.typed.Props.empty());
            }
            system.systemActorOf(dev.trellis.control.cluster.ControlEndpoints.watcher(services.map()), "control-endpoints-watcher",
                    org.apache.pekko.actor.typed.Props.empty());
            // The relay map: this server's relay, the other members' relays as they come and go, the configured others.
            String serverKey = java.util.Base64.getEncoder().encodeToString(handshake.publicKey());
            Integer stunPort = stun == null ? null : stun.localAddress().getPort();
            ControlMessage.RelayInfo own = relay == null ? null : relaySettings.ownEntry(serverKey, stunPort).withMesh(true);
            if (relay != null) {
                // Other members reach nodes to this relay at its configured URL, or this server's URL.
                system.systemActorOf(dev.trellis.control.relay.RelayDirectory.reporter(relay,
                        relaySettings.url().isEmpty() ? url : relaySettings.url(), serverKey, stunPort),
                        "relay-reporter", org.apache.pekko.actor.typed.Props.empty());
            }
            system.systemActorOf(dev.trellis.control.relay.RelayDirectory.mapWatcher(services.map(), own,
                    relaySettings.others()),
                    "relay-map-watcher", org.apache.pekko.actor.typed.Props.empty());
            LocalAdminAccess.ensure(settings.dataDir(), url, services.apiKeys(), system.scheduler(), Clock.systemUTC());
            return new TrellisServer(settings, system, binding, handshake.publicKey(), services, relay, stun);
        } catch (Exception e) {
            if (stun != null) {
                stun.close();
            }
            system.terminate();
            throw new IOException("cannot start the server on " + settings.listenHost() + ":" + settings.listenPort() + ": "
                    + (e instanceof IOException || e.getCause() == null ? e.getMessage() : e.getCause().getMessage()), e);
        }
    }

    private static com.typesafe.config.Config journalConfig(ServerSettings settings) {
        ServerSettings.Journal j = settings.journal();
        return j.postgres()
                ? PersistenceSettings.forPostgres(j.url(), j.user(), j.password(), j.maxConnections())
                : PersistenceSettings.forDataDir(settings.dataDir(), nativeLevelDb(settings.levelDbNative()));
    }

    /** The embedded STUN server, or null when trellis.stun.enabled is false. */
    private static StunServer startStun(ServerSettings settings) throws IOException {
        if (!settings.stunEnabled()) {
            return null;
        }
        try {
            return StunServer.start(java.net.InetSocketAddress.createUnresolved(settings.stunHost(), settings.stunPort()));
        } catch (IOException e) {
            String cause = e.getCause() != null ? e.getCause().getMessage() : e.getMessage();
            throw new IOException("cannot start STUN on UDP " + settings.stunHost() + ":" + settings.stunPort() + " (" + cause
                    + "); change trellis.stun.listen or set trellis.stun.enabled = false", e);
        }
    }

    private static boolean nativeLevelDb(String setting) {
        return switch (setting) {
            case "on" -> true;
            case "off" -> false;
            case "auto" -> PersistenceSettings.nativeLevelDbSupported();
            default -> throw new IllegalArgumentException("trellis.leveldb-native must be on, off or auto, not '" + setting + "'");
        };
    }

    /** Node entities publish to the map through this forwarder (their protocol is not the map's). */
    private static Behavior<dev.trellis.control.node.NodeEntity.Published> forwarder(ActorRef<NetworkMap.Command> map) {
        return Behaviors.receiveMessage(p -> {
            map.tell(new NetworkMap.FromNodes(p));
            return Behaviors.same();
        });
    }

    private static Services awaitServices(java.util.concurrent.atomic.AtomicReference<Services> holder) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (holder.get() == null && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        if (holder.get() == null) {
            throw new IllegalStateException("actor system did not start");
        }
        return holder.get();
    }

    /** Every known node recovers now, so the map is complete before nodes reconnect. */
    private static void spawnAllNodes(ActorSystem<Void> system, Services services) throws Exception {
        CompletionStage<List<AddressAllocator.Allocation>> all = AskPattern.ask(services.allocator(),
                AddressAllocator.ListAllocations::new, Duration.ofSeconds(60), system.scheduler());
        List<Long> ids;
        try {
            ids = all.toCompletableFuture().get(60, TimeUnit.SECONDS).stream().map(AddressAllocator.Allocation::nodeId).toList();
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            // A relay-only member starting before any control member is up ends here.
            throw new IOException("no member with the control role answered within 60 s; start one, or check "
                    + "trellis.cluster.seed-nodes", e);
        }
        services.nodes().tell(new NodeDirectory.SpawnAll(ids));
    }

    /** What a clean shutdown tells relay clients: come back in a second, and keep trying for a minute. */
    static final Duration RESTART_RECONNECT = Duration.ofSeconds(1);
    static final Duration RESTART_TRY_FOR = Duration.ofMinutes(1);

    public String url() {
        return settings.listenPort() == 0 ? settings.serverUrl().replaceAll(":0$", ":" + port()) : settings.serverUrl();
    }

    public int port() {
        return binding.localAddress().getPort();
    }

    /** This member's cluster roles (control, relay). */
    public java.util.SortedSet<String> roles() {
        return dev.trellis.control.cluster.ClusterStatus.trellisRoles(org.apache.pekko.cluster.typed.Cluster.get(system).selfMember());
    }

    /** The STUN server's UDP port, or -1 when trellis.stun.enabled is false. */
    public int stunPort() {
        return stun == null ? -1 : stun.port();
    }

    public String publicKeyBase64() {
        return Base64.getEncoder().encodeToString(publicKey);
    }

    public Services services() {
        return services;
    }

    /** The relay at GET /relay, or null on a member without the relay role (or with {@code trellis.relay.enabled = false}). */
    public dev.trellis.control.relay.RelayServer relay() {
        return relay;
    }

    public ActorSystem<Void> system() {
        return system;
    }

    public void awaitTermination() throws InterruptedException {
        system.getWhenTerminated().toCompletableFuture().join();
    }

    @Override
    public void close() {
        if (stun != null) {
            stun.close();
        }
        if (relay != null) {
            relay.announceRestart(RESTART_RECONNECT, RESTART_TRY_FOR);
            if (relay.mesh() != null) {
                relay.mesh().close();
            }
        }
        // Graceful: no new connections, open ones (the relay's notices already queued) get up to a second.
        binding.terminate(Duration.ofSeconds(1)).toCompletableFuture().orTimeout(5, TimeUnit.SECONDS).exceptionally(e -> null).join();
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().join();
    }

    static HttpResponse json(int status, String body) {
        return HttpResponse.create().withStatus(StatusCodes.get(status)).withEntity(ContentTypes.APPLICATION_JSON, body);
    }
}
