package dev.trellis.control.map;

import dev.trellis.control.metrics.ServerMetrics;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.policy.Policy;
import dev.trellis.control.policy.PolicyException;
import dev.trellis.control.policy.PolicyRegistry;
import dev.trellis.control.policy.PolicyView;
import dev.trellis.persistence.CborSerializable;
import dev.trellis.proto.control.ControlMessage;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.pubsub.Topic;

/**
 * Every node's current view, and the fan-out of changes to connected control sessions. Node
 * entities publish their persisted state here; sessions report presence and endpoints. Changes are
 * collected for {@link #BATCH_WINDOW} and sent as one delta, encoded once for all sessions, so a
 * burst of N changes costs N·sessions work only in the worst case, not per change. A node's JSON is
 * cached until it changes, so a full map is a concatenation, not N encodings.
 *
 * <p>This actor keeps the order of events and the sessions; the parts behind it are plain classes
 * touched only on its thread: {@link NodeIndex} (the node store), {@link PresenceTable} (presence,
 * shared with the other replicas), {@link MapEncoder} (the JSON) and {@link DeltaBatcher} (batching
 * and delivering deltas).
 */
public final class NetworkMap extends AbstractBehavior<NetworkMap.Command> {
  static final Duration BATCH_WINDOW = Duration.ofMillis(50);
  static final Duration EXPIRY_CHECK = Duration.ofSeconds(5);
  static final Duration POLICY_ASK_INTERVAL = Duration.ofSeconds(1);

  public sealed interface Command {}

  /** From the node directory: a node's persisted state changed, or it was deleted. */
  public record FromNodes(NodeEntity.Published published) implements Command {}

  /**
   * A session logged in as {@code record}'s node and wants its map. The record is what the login
   * just read or wrote; its own publication may still be on the way here.
   */
  public record Connect(NodeRecord record, ActorRef<SessionOutput> session, List<String> endpoints)
      implements Command {
    long nodeId() {
      return record.id();
    }
  }

  public record Disconnect(long nodeId, ActorRef<SessionOutput> session) implements Command {}

  /**
   * New endpoints, home relay region and multicast membership (null: unchanged) of a connected
   * node.
   */
  public record UpdateEndpoints(
      long nodeId, List<String> endpoints, String homeRelay, Boolean multicast) implements Command {
    public UpdateEndpoints(long nodeId, List<String> endpoints) {
      this(nodeId, endpoints, null, null);
    }
  }

  /** The relay map every node receives in its full map from now on. */
  public record SetRelayMap(List<ControlMessage.RelayInfo> relays) implements Command {}

  /** The URLs of every coordinator replica, as the cluster's membership says now. */
  public record SetControlUrls(List<String> urls) implements Command {}

  /**
   * Another replica's topic appeared (it joined, or its subscription only now reached us): events
   * published before it did were not delivered there, so publish again what this map knows — every
   * live record on the node topic and the presence of this replica's sessions.
   */
  public record Resync() implements Command {}

  /** Who is online, for admin listings. */
  public record GetPresence(ActorRef<Map<Long, Presence>> replyTo) implements Command {}

  /** Whether a base64 node key belongs to a registered, live node (the relay's admission check). */
  public record IsLiveNodeKey(String nodeKey, ActorRef<Boolean> replyTo) implements Command {}

  /** {@code watcher} hears {@link NodeKeyGone} whenever a live node key stops being live. */
  public record WatchNodeKeys(ActorRef<NodeKeyGone> watcher) implements Command {}

  /**
   * Which of {@code nodeKeys} (base64) belong to registered, live nodes (a standalone relay's
   * check).
   */
  public record LiveNodeKeys(Set<String> nodeKeys, ActorRef<Set<String>> replyTo)
      implements Command {}

  /**
   * A node key that was live no longer is: the node expired, logged out, was deleted or re-keyed.
   */
  public record NodeKeyGone(String nodeKey, String reason) {}

  /**
   * The access policy changed (or is announced again): from now on each node sees only the peers it
   * may talk to, with its packet filter; stale versions are ignored.
   */
  public record PolicyUpdate(PolicyRegistry.Current current) implements Command {}

  private record Flush() implements Command {}

  /** Until the policy is known: ask again (an announcement may precede our topic subscription). */
  private record AskPolicy() implements Command {}

  private record CheckExpiry() implements Command {}

  private record ReapEphemeral(long nodeId, long generation) implements Command {}

  /** What a session is told: bytes are an encoded {@link ControlMessage} ready to seal. */
  public sealed interface SessionOutput {}

  public record SendEncoded(byte[] json) implements SessionOutput {}

  /** The node may no longer use the network; the session says goodbye and closes. */
  public record Evict(String reason) implements SessionOutput {}

  public record Presence(
      boolean online, Instant lastSeen, List<String> endpoints, String homeRelay, Boolean multicast)
      implements CborSerializable {}

  /**
   * A node's presence as the replica holding its session ({@code origin}) sees it, shared with the
   * other replicas' maps through a cluster topic so their sessions show it online, with endpoints.
   */
  public record PresenceChanged(long nodeId, Presence presence, String origin)
      implements Command, CborSerializable {}

  /** Tells the directory to delete an ephemeral node that stayed offline. */
  public interface EphemeralReaper extends Consumer<Long> {}

  private final TimerScheduler<Command> timers;
  private final Clock clock;
  private final Duration ephemeralTimeout;
  private final EphemeralReaper reaper;
  private ControlMessage.NetworkInfo network;
  private final NodeIndex nodes;
  private final PresenceTable presence;
  private final MapEncoder encoder;
  private final DeltaBatcher batcher;
  private final Map<Long, ActorRef<SessionOutput>> sessions = new HashMap<>();
  private final Map<Long, Long> reapGeneration = new HashMap<>();
  private final List<ActorRef<NodeKeyGone>> keyWatchers = new ArrayList<>();

  /**
   * The policy in force (version 0: never set) and what it makes of the nodes (null: no policy).
   */
  private PolicyRegistry.Current policyCurrent = PolicyRegistry.Current.NONE;

  private Policy policy;
  private PolicyView view;
  private boolean viewStale;

  /** With a policy: the peers and filter each session's node was last sent. */
  private final Map<Long, SentView> sent = new HashMap<>();

  private record SentView(BitSet peers, List<ControlMessage.FilterRule> filter) {}

  /** Asks the policy registry to announce the policy in force (at start and on resync). */
  private final Runnable askPolicy;

  /**
   * False until this replica has heard which policy is in force (any version, "none" included):
   * until then logins wait in {@link #waiting}, so no node is ever sent a map or filter that
   * ignores a policy set elsewhere.
   */
  private boolean policyKnown;

  private final List<Connect> waiting = new ArrayList<>();

  private final ServerMetrics metrics;

  /** Where presence changes go to the other replicas (null: a map on its own, as in tests). */
  private final ActorRef<Topic.Command<PresenceChanged>> presenceTopic;

  private final ActorRef<Topic.Command<NodeEntity.Published>> nodeTopic;

  private NetworkMap(
      ActorContext<Command> context,
      TimerScheduler<Command> timers,
      Clock clock,
      Duration ephemeralTimeout,
      EphemeralReaper reaper,
      ControlMessage.NetworkInfo network,
      ActorRef<Topic.Command<PresenceChanged>> presenceTopic,
      ActorRef<Topic.Command<NodeEntity.Published>> nodeTopic,
      String origin,
      Runnable askPolicy,
      boolean policyKnown,
      ServerMetrics metrics) {
    super(context);
    this.metrics = metrics;
    this.policyKnown = policyKnown;
    // Named after this class, not the timers wrapper it starts in (a Pekko logger, kept at WARN).
    context.setLoggerName(NetworkMap.class);
    this.askPolicy = askPolicy;
    this.presenceTopic = presenceTopic;
    this.nodeTopic = nodeTopic;
    if (presenceTopic != null) {
      presenceTopic.tell(Topic.subscribe(context.getSelf().narrow()));
    }
    this.timers = timers;
    this.clock = clock;
    this.ephemeralTimeout = ephemeralTimeout;
    this.reaper = reaper;
    this.network = network;
    this.nodes = new NodeIndex(clock);
    this.presence = new PresenceTable(origin);
    this.encoder = new MapEncoder(nodes, presence);
    this.batcher =
        new DeltaBatcher(() -> timers.startSingleTimer("flush", new Flush(), BATCH_WINDOW));
    timers.startTimerWithFixedDelay(new CheckExpiry(), EXPIRY_CHECK);
    askPolicy.run();
    if (!policyKnown) {
      timers.startTimerWithFixedDelay("ask-policy", new AskPolicy(), POLICY_ASK_INTERVAL);
    }
  }

  /** A map on its own (tests): no other replicas, no policy registry (none is set). */
  public static Behavior<Command> create(
      Clock clock,
      Duration ephemeralTimeout,
      EphemeralReaper reaper,
      ControlMessage.NetworkInfo network) {
    return create(
        clock,
        ephemeralTimeout,
        reaper,
        network,
        null,
        null,
        "local",
        null,
        new ServerMetrics(false));
  }

  /**
   * A replica's map: its presence changes go to {@code presenceTopic}, and the other replicas' come
   * from it; {@code askPolicy} asks the registry to announce the policy (null: there is none), and
   * no node is let in before it is known.
   */
  public static Behavior<Command> create(
      Clock clock,
      Duration ephemeralTimeout,
      EphemeralReaper reaper,
      ControlMessage.NetworkInfo network,
      ActorRef<Topic.Command<PresenceChanged>> presenceTopic,
      ActorRef<Topic.Command<NodeEntity.Published>> nodeTopic,
      String origin,
      Runnable askPolicy,
      ServerMetrics metrics) {
    return Behaviors.withTimers(
        timers ->
            Behaviors.setup(
                ctx ->
                    new NetworkMap(
                        ctx,
                        timers,
                        clock,
                        ephemeralTimeout,
                        reaper,
                        network,
                        presenceTopic,
                        nodeTopic,
                        origin,
                        askPolicy == null ? () -> {} : askPolicy,
                        askPolicy == null,
                        metrics)));
  }

  /**
   * New network settings: every session hears them at once (nodes use them to fail over and to pick
   * relays).
   */
  private Behavior<Command> setNetwork(ControlMessage.NetworkInfo updated) {
    if (updated.equals(network)) {
      return this;
    }
    network = updated;
    byte[] json = MapEncoder.networkUpdate(network);
    sessions.values().forEach(s -> s.tell(new SendEncoded(json)));
    return this;
  }

  private Behavior<Command> resync() {
    askPolicy.run();
    if (nodeTopic != null) {
      for (NodeRecord r : nodes.all()) {
        if (nodes.live(r)) {
          nodeTopic.tell(Topic.publish(new NodeEntity.NodeChanged(r)));
        }
      }
    }
    for (long id : sessions.keySet()) {
      Presence p = presence.get(id);
      if (p != null) {
        publish(id, p);
      }
    }
    return this;
  }

  /** Tells the other replicas a presence this replica observed. */
  private void publish(long nodeId, Presence p) {
    if (presenceTopic != null) {
      presenceTopic.tell(Topic.publish(new PresenceChanged(nodeId, p, presence.origin())));
    }
  }

  private Behavior<Command> onPresenceChanged(PresenceChanged m) {
    if (presence.reported(m, sessions.containsKey(m.nodeId())) && nodes.isLive(m.nodeId())) {
      markChanged(m.nodeId());
    }
    return this;
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(FromNodes.class, this::onFromNodes)
        .onMessage(Connect.class, this::onConnect)
        .onMessage(Disconnect.class, this::onDisconnect)
        .onMessage(UpdateEndpoints.class, this::onUpdateEndpoints)
        .onMessage(GetPresence.class, this::onGetPresence)
        .onMessage(PresenceChanged.class, this::onPresenceChanged)
        .onMessage(Resync.class, m -> resync())
        .onMessage(PolicyUpdate.class, this::onPolicy)
        .onMessage(
            AskPolicy.class,
            m -> {
              askPolicy.run();
              return this;
            })
        .onMessage(SetRelayMap.class, m -> setNetwork(network.withRelays(List.copyOf(m.relays()))))
        .onMessage(
            SetControlUrls.class, m -> setNetwork(network.withControlUrls(List.copyOf(m.urls()))))
        .onMessage(
            IsLiveNodeKey.class,
            m -> {
              m.replyTo().tell(nodes.isLiveNodeKey(m.nodeKey()));
              return this;
            })
        .onMessage(
            LiveNodeKeys.class,
            m -> {
              m.replyTo().tell(nodes.liveNodeKeys(m.nodeKeys()));
              return this;
            })
        .onMessage(
            WatchNodeKeys.class,
            m -> {
              keyWatchers.add(m.watcher());
              return this;
            })
        .onMessage(
            Flush.class,
            m -> {
              long started = batcher.batchStartedNanos();
              int deltas =
                  policy == null
                      ? batcher.flush(nodes::isLive, encoder, sessions)
                      : flushWithPolicy(batcher.drain(nodes::isLive));
              if (deltas > 0) {
                metrics.deltasSent(deltas, System.nanoTime() - started);
              }
              countNodes();
              return this;
            })
        .onMessage(CheckExpiry.class, m -> checkExpiry())
        .onMessage(ReapEphemeral.class, this::onReap)
        .build();
  }

  private Behavior<Command> onFromNodes(FromNodes message) {
    viewStale = true; // who may see whom can change with any record
    switch (message.published()) {
      case NodeEntity.NodeChanged(NodeRecord record) -> {
        boolean wasLive = batcher.visible(record.id());
        NodeRecord old = nodes.put(record);
        if (nodes.live(old)
            && (!nodes.live(record) || !Objects.equals(old.nodeKey(), record.nodeKey()))) {
          keyGone(old, nodes.live(record) ? "node key changed" : "node expired or logged out");
        }
        if (nodes.live(record)) {
          markChanged(record.id());
        } else {
          String why =
              record.expired() || record.expiry() != null ? "node expired" : "node logged out";
          if (nodes.live(old)) {
            getContext()
                .getLog()
                .info(
                    "{}: {} (node {}, user {})",
                    why,
                    record.hostname(),
                    record.id(),
                    record.user());
          }
          evict(record.id(), why);
          if (wasLive) {
            markRemoved(record.id());
          }
        }
      }
      case NodeEntity.NodeRemoved(long nodeId, String user) -> {
        NodeRecord gone = nodes.remove(nodeId);
        if (gone != null) {
          getContext()
              .getLog()
              .info("node deleted: {} (node {}, user {})", gone.hostname(), nodeId, user);
        }
        keyGone(gone, "node deleted");
        boolean wasLive = batcher.visible(nodeId);
        evict(nodeId, "node deleted");
        presence.remove(nodeId);
        if (wasLive) {
          markRemoved(nodeId);
        }
      }
    }
    return this;
  }

  private Behavior<Command> onConnect(Connect message) {
    if (!policyKnown) {
      waiting.add(message);
      askPolicy.run();
      return this;
    }
    NodeRecord record = nodes.get(message.nodeId());
    if (!nodes.live(record) && nodes.live(message.record())) {
      record = message.record();
      nodes.put(record);
      viewStale = true; // a node the view has not counted yet
    }
    if (!nodes.live(record)) {
      message.session().tell(new Evict("node is not registered or has expired"));
      return this;
    }
    ActorRef<SessionOutput> previous = sessions.put(message.nodeId(), message.session());
    if (previous != null && !previous.equals(message.session())) {
      previous.tell(new Evict("replaced by a newer session of the same node"));
    }
    reapGeneration.remove(message.nodeId());
    publish(
        message.nodeId(),
        presence.connected(message.nodeId(), message.endpoints(), clock.instant()));
    markChanged(message.nodeId());
    sendFullMap(message.nodeId(), message.session());
    countNodes(); // O(n), as the full map just sent
    return this;
  }

  private Behavior<Command> onDisconnect(Disconnect message) {
    waiting.removeIf(c -> c.session().equals(message.session()));
    if (!message.session().equals(sessions.get(message.nodeId()))) {
      return this; // an older, replaced session
    }
    sessions.remove(message.nodeId());
    sent.remove(message.nodeId());
    Presence offline = presence.disconnected(message.nodeId(), clock.instant());
    if (offline == null) {
      // It reconnected to another replica before this session closed: it is online there.
      markChanged(message.nodeId());
      return this;
    }
    publish(message.nodeId(), offline);
    countNodes();
    NodeRecord record = nodes.get(message.nodeId());
    if (record != null && record.ephemeral()) {
      long generation = reapGeneration.merge(message.nodeId(), 1L, Long::sum);
      timers.startSingleTimer(
          "reap-" + message.nodeId(),
          new ReapEphemeral(message.nodeId(), generation),
          ephemeralTimeout);
    }
    if (nodes.live(record)) {
      markChanged(message.nodeId());
    }
    return this;
  }

  private Behavior<Command> onUpdateEndpoints(UpdateEndpoints message) {
    Presence updated =
        presence.endpointsChanged(
            message.nodeId(),
            message.endpoints(),
            message.homeRelay(),
            message.multicast(),
            clock.instant());
    if (updated != null) {
      publish(message.nodeId(), updated);
      markChanged(message.nodeId());
    }
    return this;
  }

  private Behavior<Command> onGetPresence(GetPresence message) {
    message.replyTo().tell(presence.snapshot());
    return this;
  }

  private Behavior<Command> onReap(ReapEphemeral message) {
    Long generation = reapGeneration.get(message.nodeId());
    if (generation != null
        && generation == message.generation()
        && !sessions.containsKey(message.nodeId())) {
      reapGeneration.remove(message.nodeId());
      getContext()
          .getLog()
          .info("deleting ephemeral node {}: offline for {}", message.nodeId(), ephemeralTimeout);
      reaper.accept(message.nodeId());
    }
    return this;
  }

  private Behavior<Command> checkExpiry() {
    Instant now = clock.instant();
    for (NodeRecord record : new ArrayList<>(nodes.all())) {
      if (record.expiry() != null
          && !record.expiry().isAfter(now)
          && batcher.visible(record.id())) {
        getContext()
            .getLog()
            .info(
                "node expired: {} (node {}, user {}) at {}",
                record.hostname(),
                record.id(),
                record.user(),
                record.expiry());
        keyGone(record, "node expired");
        evict(record.id(), "node expired");
        markRemoved(record.id());
      }
    }
    return this;
  }

  private void keyGone(NodeRecord old, String reason) {
    if (old != null && old.nodeKey() != null) {
      keyWatchers.forEach(w -> w.tell(new NodeKeyGone(old.nodeKey(), reason)));
    }
  }

  private void evict(long nodeId, String reason) {
    sent.remove(nodeId);
    ActorRef<SessionOutput> session = sessions.remove(nodeId);
    if (session != null) {
      session.tell(new Evict(reason));
    }
  }

  // ---- policy ---------------------------------------------------------------------------------

  private Behavior<Command> onPolicy(PolicyUpdate m) {
    PolicyRegistry.Current current = m.current();
    if (!policyKnown) {
      policyKnown = true;
      timers.cancel("ask-policy");
      if (current.version() <= policyCurrent.version()) {
        admitWaiting(); // no policy was ever set
        return this;
      }
    }
    if (current.version() <= policyCurrent.version()) {
      return this; // an announcement of what is already in force, or older
    }
    Policy parsed = null;
    if (current.text() != null) {
      try {
        parsed = Policy.parse(current.text());
      } catch (PolicyException e) {
        // The registry checked it; a replica of another version may read it differently.
        getContext()
            .getLog()
            .error("policy version {} unusable here: {}", current.version(), e.getMessage());
        return this;
      }
    }
    long start = System.nanoTime();
    policyCurrent = current;
    policy = parsed;
    view = null;
    viewStale = true;
    sent.clear();
    // Every session gets its whole map again: peers it may now see or no longer sees, and its
    // filter, which goes first.
    sessions.forEach(this::sendFullMap);
    admitWaiting();
    getContext()
        .getLog()
        .info(
            "policy version {} in force ({}): {} sessions updated in {} ms",
            current.version(),
            parsed == null ? "none: everything allowed" : parsed.acls().size() + " rules",
            sessions.size(),
            (System.nanoTime() - start) / 1_000_000);
    return this;
  }

  /** The logins that waited for the policy to be known, in the order they came. */
  private void admitWaiting() {
    if (waiting.isEmpty()) return;
    List<Connect> admitted = List.copyOf(waiting);
    waiting.clear();
    admitted.forEach(this::onConnect);
  }

  /** What the policy makes of the live nodes now (null: no policy). */
  private PolicyView view() {
    if (policy == null) return null;
    if (view == null || viewStale) {
      List<NodeRecord> live = new ArrayList<>();
      for (NodeRecord r : nodes.all()) {
        if (nodes.live(r)) live.add(r);
      }
      view = PolicyView.of(policy, live);
      viewStale = false;
    }
    return view;
  }

  /** The node's packet filter, then its full map with the peers it may see. */
  private void sendFullMap(long nodeId, ActorRef<SessionOutput> session) {
    metrics.fullMapSent();
    PolicyView v = view();
    List<ControlMessage.FilterRule> filter = v == null ? null : v.filter(nodeId);
    session.tell(new SendEncoded(MapEncoder.packetFilter(filter)));
    if (v == null) {
      session.tell(new SendEncoded(encoder.fullMap(nodeId, network)));
      return;
    }
    BitSet peers = v.peers(nodeId);
    session.tell(new SendEncoded(encoder.fullMap(nodeId, network, id -> peers.get((int) id))));
    sent.put(nodeId, new SentView(peers, filter));
  }

  /**
   * A batch under a policy: each session gets the changed nodes it may see, the ones it may now
   * see, removal of the ones it no longer may, and its filter first when that changed.
   */
  private int flushWithPolicy(DeltaBatcher.Batch batch) {
    int deltas = 0;
    PolicyView v = view();
    for (var e : sessions.entrySet()) {
      long self = e.getKey();
      SentView before = sent.get(self);
      if (before == null) {
        sendFullMap(self, e.getValue());
        continue;
      }
      BitSet now = v.peers(self);
      List<ControlMessage.FilterRule> filter = v.filter(self);
      if (!filter.equals(before.filter())) {
        e.getValue().tell(new SendEncoded(MapEncoder.packetFilter(filter)));
      }
      Set<Long> upserted = new LinkedHashSet<>();
      for (long id : batch.changed()) {
        if (id == self || now.get((int) id)) upserted.add(id);
      }
      BitSet added = (BitSet) now.clone();
      added.andNot(before.peers());
      for (int id = added.nextSetBit(0); id >= 0; id = added.nextSetBit(id + 1)) {
        if (nodes.isLive(id)) upserted.add((long) id);
      }
      Set<Long> removed = new LinkedHashSet<>();
      for (long id : batch.removed()) {
        if (before.peers().get((int) id)) removed.add(id);
      }
      BitSet dropped = (BitSet) before.peers().clone();
      dropped.andNot(now);
      for (int id = dropped.nextSetBit(0); id >= 0; id = dropped.nextSetBit(id + 1)) {
        removed.add((long) id);
      }
      if (!upserted.isEmpty() || !removed.isEmpty()) {
        boolean selfChanged = upserted.contains(self);
        e.getValue()
            .tell(
                new SendEncoded(
                    encoder.delta(
                        List.copyOf(upserted), List.copyOf(removed), selfChanged ? self : -1)));
        deltas++;
      }
      sent.put(self, new SentView(now, filter));
    }
    return deltas;
  }

  /** Tells the metrics how many nodes this replica knows and how many of them are online. */
  private void countNodes() {
    long online = 0;
    for (Presence p : presence.snapshot().values()) {
      if (p.online()) online++;
    }
    metrics.nodes(nodes.all().size(), online);
  }

  private void markChanged(long nodeId) {
    encoder.invalidate(nodeId);
    batcher.changed(nodeId);
  }

  private void markRemoved(long nodeId) {
    encoder.invalidate(nodeId);
    batcher.removed(nodeId);
  }
}
