package dev.trellis.control.server;

import dev.trellis.control.admin.Admin;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.cluster.ClusterSettings;
import dev.trellis.control.cluster.ControlEndpoints;
import dev.trellis.control.cluster.ShardedRegistry;
import dev.trellis.control.cluster.StandIn;
import dev.trellis.control.cluster.TopicWatcher;
import dev.trellis.control.map.NetworkMap;
import dev.trellis.control.metrics.ServerMetrics;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeDirectory;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.policy.PolicyRegistry;
import dev.trellis.control.quality.QualityHistory;
import dev.trellis.control.relay.RelayDirectory;
import dev.trellis.control.relay.RelayServer;
import dev.trellis.control.relay.RelaySettings;
import dev.trellis.control.session.ControlSession;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.persistence.PersistenceSettings;
import dev.trellis.proto.control.ControlMessage;
import java.time.Clock;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.pubsub.Topic;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Join;

/**
 * The root actor of {@code trellis server}: it spawns this member's actors and hands each the
 * ActorRefs it needs, and does nothing else (compare the killrweather sample's {@code Guardian}).
 *
 * <ul>
 *   <li>When it starts: the sharded registries (users, auth keys, API keys, addresses), the node
 *       event and presence topics, the network map, the node directory, the admin actor, the
 *       watchers that feed the map the control URLs and the relay map, and, on a member with the
 *       relay role, the relay and its mesh.
 *   <li>On {@link Serving}, once the HTTP port is bound: what announces this member to the cluster,
 *       its control URL (control role) and its relay's reporter (relay role).
 * </ul>
 *
 * Start-up code asks it for the result ({@link GetWiring}). The map reaps an ephemeral node through
 * the admin actor, which needs the map: the map tells this guardian ({@link ReapNode}), which tells
 * the admin actor.
 *
 * <p>Threads: its state is its own actor's. What it hands out (ActorRefs, the {@link RelayServer})
 * is safe to share.
 */
final class ServerGuardian {
  private ServerGuardian() {}

  /** What a member is wired from. {@code stunPort} null: no STUN here. */
  record Setup(
      ServerSettings settings,
      ClusterSettings cluster,
      RelaySettings relay,
      byte[] privateKey,
      String serverKey,
      Integer stunPort,
      Clock clock,
      ServerMetrics metrics) {}

  sealed interface Command {}

  /** Answers with what the guardian wired (at once: the wiring is done when it has started). */
  record GetWiring(ActorRef<Wiring> replyTo) implements Command {}

  /** The services, and the relay on a member with the relay role (else null). */
  record Wiring(
      TrellisServer.Services services,
      ControlSession.Registries registries,
      RelayServer relay,
      ActorRef<QualityHistory.Command> quality) {}

  /** The HTTP port is bound: this member serves at {@code url}. Told once. */
  record Serving(String url) implements Command {}

  /** The network map gives up on an ephemeral node: delete it the admin way. */
  private record ReapNode(long nodeId) implements Command {}

  static Behavior<Command> create(Setup setup) {
    return Behaviors.setup(
        ctx -> {
          ServerSettings settings = setup.settings();
          Cluster cluster = Cluster.get(ctx.getSystem());
          if (setup.cluster().standalone()) {
            // A cluster of its own: join itself, so cluster features work without any other member.
            cluster.manager().tell(Join.create(cluster.selfMember().address()));
          }
          // Sharded across the control members; each a single entity for the whole cluster.
          ShardedRegistry<UserRegistry.Command> users =
              ShardedRegistry.start(ctx, UserRegistry.Command.class, "users", UserRegistry::create);
          ShardedRegistry<AuthKeyRegistry.Command> authKeys =
              ShardedRegistry.start(
                  ctx, AuthKeyRegistry.Command.class, "authkeys", AuthKeyRegistry::create);
          ShardedRegistry<ApiKeyRegistry.Command> apiKeys =
              ShardedRegistry.start(
                  ctx, ApiKeyRegistry.Command.class, "apikeys", ApiKeyRegistry::create);
          ShardedRegistry<AddressAllocator.Command> allocator =
              ShardedRegistry.start(
                  ctx,
                  AddressAllocator.Command.class,
                  "addresses",
                  () -> AddressAllocator.create(settings.ipv4Prefix(), settings.ipv6Prefix()));
          ActorRef<Topic.Command<NodeEntity.Published>> topic =
              ctx.spawn(
                  Topic.create(NodeEntity.Published.class, "trellis-node-events"),
                  "node-events-topic");
          ActorRef<Topic.Command<NetworkMap.PresenceChanged>> presence =
              ctx.spawn(
                  Topic.create(NetworkMap.PresenceChanged.class, "trellis-presence"),
                  "presence-topic");
          // The policy: one entity for the cluster, announced to every replica's map by a topic.
          ActorRef<Topic.Command<PolicyRegistry.PolicyChanged>> policyTopic =
              ctx.spawn(
                  Topic.create(PolicyRegistry.PolicyChanged.class, "trellis-policy"),
                  "policy-topic");
          ActorRef<PolicyRegistry.PolicyChanged> policyPublisher =
              ctx.spawn(publishTo(policyTopic), "policy-publisher");
          ShardedRegistry<PolicyRegistry.Command> policies =
              ShardedRegistry.start(
                  ctx,
                  PolicyRegistry.Command.class,
                  "policy",
                  () -> PolicyRegistry.create(policyPublisher));
          ActorRef<Command> self = ctx.getSelf();
          ActorRef<NetworkMap.Command> map =
              ctx.spawn(
                  NetworkMap.create(
                      setup.clock(),
                      settings.ephemeralTimeout(),
                      nodeId -> self.tell(new ReapNode(nodeId)),
                      new ControlMessage.NetworkInfo(settings.ipv4Prefix(), settings.ipv6Prefix())
                          .withDns(settings.dns())
                          .withMulticast(settings.multicast()),
                      presence,
                      topic,
                      cluster.selfMember().address().toString(),
                      () -> policies.ref().tell(new PolicyRegistry.Announce()),
                      setup.metrics()),
                  "network-map");
          policyTopic.tell(
              Topic.subscribe(
                  ctx.spawn(
                      Behaviors.<PolicyRegistry.PolicyChanged>receiveMessage(
                          p -> {
                            map.tell(new NetworkMap.PolicyUpdate(p.current()));
                            return Behaviors.same();
                          }),
                      "policy-events")));
          // Node entities publish to every replica's map through a cluster topic.
          ActorRef<NodeEntity.Published> published = ctx.spawn(toMap(map), "node-events");
          topic.tell(Topic.subscribe(published));
          ctx.spawn(
              TopicWatcher.create(
                  List.of(
                      topic.unsafeUpcast(), presence.unsafeUpcast(), policyTopic.unsafeUpcast()),
                  () -> map.tell(new NetworkMap.Resync())),
              "topic-watcher");
          ActorRef<NodeEntity.Published> publisher = ctx.spawn(publishTo(topic), "node-publisher");
          ActorRef<NodeDirectory.Command> nodes =
              ctx.spawn(NodeDirectory.create(ctx.getSystem(), publisher, published), "nodes");
          ActorRef<Admin.Command> admin =
              ctx.spawn(
                  Admin.create(
                      users.ref(),
                      authKeys.ref(),
                      apiKeys.ref(),
                      allocator.ref(),
                      nodes,
                      map,
                      policies.ref(),
                      setup.clock()),
                  "admin");
          TrellisServer.Services services =
              new TrellisServer.Services(
                  users.ref(), authKeys.ref(), apiKeys.ref(), allocator.ref(), nodes, map, admin);
          ControlSession.Registries registries =
              new ControlSession.Registries(
                  new StandIn(
                      ctx.getSystem(),
                      PersistenceSettings.sharedJournal(ctx.getSystem().settings().config()),
                      setup.clock()),
                  authKeys.target(),
                  users.target(),
                  allocator.target(),
                  id -> NodeDirectory.target(ctx.getSystem(), publisher, id));

          // The roles decide what this member runs: control = entities, control sessions, a control
          // URL in
          // every node's map; relay = the relay at GET /relay in the relay map and the mesh.
          RelayServer relay = null;
          if (setup.cluster().holds(ClusterSettings.ROLE_RELAY)) {
            relay = new RelayServer(ctx.getSystem(), setup.relay(), setup.privateKey(), map);
            relay.startMesh(ctx); // forwards to and from the other members' relays
            setup.metrics().watchRelay(relay.registry(), relay::mesh);
          }
          // Nodes learn every replica's URL, to log in elsewhere when this one goes away.
          ctx.spawn(ControlEndpoints.watcher(map), "control-endpoints-watcher");
          // The relay map: this member's relay, the other members' relays as they come and go, the
          // configured others.
          ControlMessage.RelayInfo own =
              relay == null
                  ? null
                  : setup.relay().ownEntry(setup.serverKey(), setup.stunPort()).withMesh(true);
          ctx.spawn(
              RelayDirectory.mapWatcher(map, own, setup.relay().others()), "relay-map-watcher");
          // What this member's sessions' nodes report of their peers (every replica keeps its own).
          ActorRef<QualityHistory.Command> quality =
              ctx.spawn(
                  QualityHistory.create(
                      QualityHistory.Settings.from(settings.config().getConfig("trellis"))),
                  "quality-history");
          return wired(ctx, setup, new Wiring(services, registries, relay, quality), false);
        });
  }

  private static Behavior<Command> wired(
      ActorContext<Command> ctx, Setup setup, Wiring wiring, boolean announced) {
    return Behaviors.receiveMessage(
        m ->
            switch (m) {
              case GetWiring g -> {
                g.replyTo().tell(wiring);
                yield Behaviors.same();
              }
              case ReapNode r -> {
                // Also frees the node's addresses and detaches it from its user.
                wiring
                    .services()
                    .admin()
                    .tell(new Admin.DeleteNode(r.nodeId(), ctx.getSystem().ignoreRef()));
                yield Behaviors.same();
              }
              case Serving s when announced -> Behaviors.same();
              case Serving s -> {
                announce(ctx, setup, wiring.relay(), s.url());
                yield wired(ctx, setup, wiring, true);
              }
            });
  }

  /**
   * Registers this member's control URL and relay with the receptionist, for the other members'
   * watchers.
   */
  private static void announce(
      ActorContext<Command> ctx, Setup setup, RelayServer relay, String url) {
    if (setup.cluster().holds(ClusterSettings.ROLE_CONTROL)) {
      ctx.spawn(ControlEndpoints.endpoint(url), "control-endpoint");
    }
    if (relay != null) {
      // Other members reach nodes to this relay at its configured URL, or this server's URL.
      String relayUrl = setup.relay().url().isEmpty() ? url : setup.relay().url();
      ctx.spawn(
          RelayDirectory.reporter(relay, relayUrl, setup.serverKey(), setup.stunPort()),
          "relay-reporter");
    }
  }

  /** Node entities publish to the map through this forwarder (their protocol is not the map's). */
  private static Behavior<NodeEntity.Published> toMap(ActorRef<NetworkMap.Command> map) {
    return Behaviors.receiveMessage(
        p -> {
          map.tell(new NetworkMap.FromNodes(p));
          return Behaviors.same();
        });
  }

  /** Entities publish here, and this member's topic takes it to every replica. */
  private static <T> Behavior<T> publishTo(ActorRef<Topic.Command<T>> topic) {
    return Behaviors.receiveMessage(
        p -> {
          topic.tell(Topic.publish(p));
          return Behaviors.same();
        });
  }
}
