package dev.trellis.control.map;

import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.pubsub.Topic;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * Every node's current view, and the fan-out of changes to connected control sessions. Node
 * entities publish their persisted state here; sessions report presence and endpoints. Changes
 * are collected for {@link #BATCH_WINDOW} and sent as one delta, encoded once for all sessions,
 * so a burst of N changes costs N·sessions work only in the worst case, not per change.
 * A node's JSON is cached until it changes, so a full map is a concatenation, not N encodings.
 */
public final class NetworkMap extends AbstractBehavior<NetworkMap.Command> {
    static final Duration BATCH_WINDOW = Duration.ofMillis(50);
    static final Duration EXPIRY_CHECK = Duration.ofSeconds(5);

    public sealed interface Command {}

    /** From the node directory: a node's persisted state changed, or it was deleted. */
    public record FromNodes(NodeEntity.Published published) implements Command {}

    /**
     * A session logged in as {@code record}'s node and wants its map. The record is what the login
     * just read or wrote; its own publication may still be on the way here.
     */
    public record Connect(NodeRecord record, ActorRef<SessionOutput> session, List<String> endpoints) implements Command {
        long nodeId() {
            return record.id();
        }
    }

    public record Disconnect(long nodeId, ActorRef<SessionOutput> session) implements Command {}

    /** New endpoints and home relay region (null: unchanged) of a connected node. */
    public record UpdateEndpoints(long nodeId, List<String> endpoints, String homeRelay) implements Command {
        public UpdateEndpoints(long nodeId, List<String> endpoints) {
            this(nodeId, endpoints, null);
        }
    }

    /** The relay map every node receives in its full map from now on. */
    public record SetRelayMap(List<ControlMessage.RelayInfo> relays) implements Command {}

    /** The URLs of every coordinator replica, as the cluster's membership says now. */
    public record SetControlUrls(List<String> urls) implements Command {}

    /**
     * Another replica's topic appeared (it joined, or its subscription only now reached us): events
     * published before it did were not delivered there, so publish again what this map knows —
     * every live record on the node topic and the presence of this replica's sessions.
     */
    public record Resync() implements Command {}

    /** Who is online, for admin listings. */
    public record GetPresence(ActorRef<Map<Long, Presence>> replyTo) implements Command {}

    /** Whether a base64 node key belongs to a registered, live node (the relay's admission check). */
    public record IsLiveNodeKey(String nodeKey, ActorRef<Boolean> replyTo) implements Command {}

    /** {@code watcher} hears {@link NodeKeyGone} whenever a live node key stops being live. */
    public record WatchNodeKeys(ActorRef<NodeKeyGone> watcher) implements Command {}

    /** Which of {@code nodeKeys} (base64) belong to registered, live nodes (a standalone relay's check). */
    public record LiveNodeKeys(java.util.Set<String> nodeKeys, ActorRef<java.util.Set<String>> replyTo) implements Command {}

    /** A node key that was live no longer is: the node expired, logged out, was deleted or re-keyed. */
    public record NodeKeyGone(String nodeKey, String reason) {}

    private record Flush() implements Command {}

    private record CheckExpiry() implements Command {}

    private record ReapEphemeral(long nodeId, long generation) implements Command {}

    /** What a session is told: bytes are an encoded {@link ControlMessage} ready to seal. */
    public sealed interface SessionOutput {}

    public record SendEncoded(byte[] json) implements SessionOutput {}

    /** The node may no longer use the network; the session says goodbye and closes. */
    public record Evict(String reason) implements SessionOutput {}

    public record Presence(boolean online, Instant lastSeen, List<String> endpoints, String homeRelay)
            implements dev.trellis.persistence.CborSerializable {}

    /**
     * A node's presence as the replica holding its session ({@code origin}) sees it, shared with the
     * other replicas' maps through a cluster topic so their sessions show it online, with endpoints.
     */
    public record PresenceChanged(long nodeId, Presence presence, String origin)
            implements Command, dev.trellis.persistence.CborSerializable {}

    /** Tells the directory to delete an ephemeral node that stayed offline. */
    public interface EphemeralReaper extends Consumer<Long> {}

    private final TimerScheduler<Command> timers;
    private final Clock clock;
    private final Duration ephemeralTimeout;
    private final EphemeralReaper reaper;
    private ControlMessage.NetworkInfo network;
    private final Map<Long, NodeRecord> records = new HashMap<>();
    /** Node id by node key, so the relay's admission check does not scan every record. */
    private final Map<String, Long> idByNodeKey = new HashMap<>();
    private final Map<Long, Presence> presence = new HashMap<>();
    private final Map<Long, ActorRef<SessionOutput>> sessions = new HashMap<>();
    /** Encoded NodeInfo JSON of each live node; dropped when the node changes. */
    private final Map<Long, byte[]> encoded = new HashMap<>();
    /** Nodes that peers currently see in their maps. */
    private final Set<Long> visible = new java.util.HashSet<>();
    private final Set<Long> changed = new LinkedHashSet<>();
    private final Set<Long> removed = new LinkedHashSet<>();
    private final Map<Long, Long> reapGeneration = new HashMap<>();
    private final List<ActorRef<NodeKeyGone>> keyWatchers = new ArrayList<>();
    private boolean flushScheduled;
    /** Where presence changes go to the other replicas (null: a map on its own, as in tests); this replica's name. */
    private final ActorRef<Topic.Command<PresenceChanged>> presenceTopic;
    private final ActorRef<Topic.Command<NodeEntity.Published>> nodeTopic;
    private final String origin;
    /** Presence another replica reported for a node that still has a session here (it may be moving there). */
    private final Map<Long, Presence> elsewhere = new HashMap<>();

    private NetworkMap(ActorContext<Command> context, TimerScheduler<Command> timers, Clock clock,
                       Duration ephemeralTimeout, EphemeralReaper reaper, ControlMessage.NetworkInfo network,
                       ActorRef<Topic.Command<PresenceChanged>> presenceTopic,
                       ActorRef<Topic.Command<NodeEntity.Published>> nodeTopic, String origin) {
        super(context);
        this.presenceTopic = presenceTopic;
        this.nodeTopic = nodeTopic;
        this.origin = origin;
        if (presenceTopic != null) {
            presenceTopic.tell(Topic.subscribe(context.getSelf().narrow()));
        }
        this.timers = timers;
        this.clock = clock;
        this.ephemeralTimeout = ephemeralTimeout;
        this.reaper = reaper;
        this.network = network;
        timers.startTimerWithFixedDelay(new CheckExpiry(), EXPIRY_CHECK);
    }

    public static Behavior<Command> create(Clock clock, Duration ephemeralTimeout, EphemeralReaper reaper,
                                           ControlMessage.NetworkInfo network) {
        return create(clock, ephemeralTimeout, reaper, network, null, null, "local");
    }

    /** A replica's map: its presence changes go to {@code presenceTopic}, and the other replicas' come from it. */
    public static Behavior<Command> create(Clock clock, Duration ephemeralTimeout, EphemeralReaper reaper,
                                           ControlMessage.NetworkInfo network,
                                           ActorRef<Topic.Command<PresenceChanged>> presenceTopic,
                                           ActorRef<Topic.Command<NodeEntity.Published>> nodeTopic, String origin) {
        return Behaviors.withTimers(timers -> Behaviors.setup(ctx ->
                new NetworkMap(ctx, timers, clock, ephemeralTimeout, reaper, network, presenceTopic, nodeTopic, origin)));
    }

    /** New network settings: every session hears them at once (nodes use them to fail over and to pick relays). */
    private Behavior<Command> setNetwork(ControlMessage.NetworkInfo updated) {
        if (updated.equals(network)) {
            return this;
        }
        network = updated;
        byte[] json;
        try {
            json = ControlJson.MAPPER.writerFor(ControlMessage.class).writeValueAsBytes(new ControlMessage.NetworkUpdate(network));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        sessions.values().forEach(s -> s.tell(new SendEncoded(json)));
        return this;
    }

    private Behavior<Command> resync() {
        if (nodeTopic != null) {
            for (NodeRecord r : records.values()) {
                if (live(r)) {
                    nodeTopic.tell(Topic.publish(new NodeEntity.NodeChanged(r)));
                }
            }
        }
        if (presenceTopic != null) {
            for (long id : sessions.keySet()) {
                Presence p = presence.get(id);
                if (p != null) {
                    presenceTopic.tell(Topic.publish(new PresenceChanged(id, p, origin)));
                }
            }
        }
        return this;
    }

    /** Records a presence this replica observed and tells the other replicas. */
    private void setPresence(long nodeId, Presence p) {
        presence.put(nodeId, p);
        if (presenceTopic != null) {
            presenceTopic.tell(Topic.publish(new PresenceChanged(nodeId, p, origin)));
        }
    }

    private Behavior<Command> onPresenceChanged(PresenceChanged m) {
        if (origin.equals(m.origin())) {
            return this;
        }
        if (sessions.containsKey(m.nodeId())) {
            // The node has a session here, which wins; if it moved, what the other replica saw counts once ours closes.
            elsewhere.put(m.nodeId(), m.presence());
            return this;
        }
        Presence old = presence.get(m.nodeId());
        if (old != null && old.lastSeen() != null && m.presence().lastSeen() != null && m.presence().lastSeen().isBefore(old.lastSeen())) {
            return this; // older news than what we have
        }
        presence.put(m.nodeId(), m.presence());
        if (live(records.get(m.nodeId()))) {
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
                .onMessage(SetRelayMap.class, m -> setNetwork(network.withRelays(List.copyOf(m.relays()))))
                .onMessage(SetControlUrls.class, m -> setNetwork(network.withControlUrls(List.copyOf(m.urls()))))
                .onMessage(IsLiveNodeKey.class, m -> {
                    Long id = idByNodeKey.get(m.nodeKey());
                    NodeRecord r = id == null ? null : records.get(id);
                    m.replyTo().tell(live(r) && m.nodeKey().equals(r.nodeKey()));
                    return this;
                })
                .onMessage(LiveNodeKeys.class, m -> {
                    java.util.Set<String> live = new java.util.LinkedHashSet<>();
                    for (String k : m.nodeKeys()) {
                        Long id = idByNodeKey.get(k);
                        NodeRecord r = id == null ? null : records.get(id);
                        if (live(r) && k.equals(r.nodeKey())) {
                            live.add(k);
                        }
                    }
                    m.replyTo().tell(live);
                    return this;
                })
                .onMessage(WatchNodeKeys.class, m -> {
                    keyWatchers.add(m.watcher());
                    return this;
                })
                .onMessage(Flush.class, m -> flush())
                .onMessage(CheckExpiry.class, m -> checkExpiry())
                .onMessage(ReapEphemeral.class, this::onReap)
                .build();
    }

    private NodeRecord putRecord(NodeRecord record) {
        NodeRecord old = records.put(record.id(), record);
        if (old != null && old.nodeKey() != null && !old.nodeKey().equals(record.nodeKey())) {
            idByNodeKey.remove(old.nodeKey(), old.id());
        }
        if (record.nodeKey() != null) {
            idByNodeKey.put(record.nodeKey(), record.id());
        }
        return old;
    }

    private NodeRecord removeRecord(long nodeId) {
        NodeRecord old = records.remove(nodeId);
        if (old != null && old.nodeKey() != null) {
            idByNodeKey.remove(old.nodeKey(), nodeId);
        }
        return old;
    }

    private boolean live(NodeRecord record) {
        return record != null && record.live(clock.instant());
    }

    private Behavior<Command> onFromNodes(FromNodes message) {
        switch (message.published()) {
            case NodeEntity.NodeChanged(NodeRecord record) -> {
                boolean wasLive = visible.contains(record.id());
                NodeRecord old = putRecord(record);
                if (live(old) && (!live(record) || !java.util.Objects.equals(old.nodeKey(), record.nodeKey()))) {
                    keyGone(old, live(record) ? "node key changed" : "node expired or logged out");
                }
                if (live(record)) {
                    markChanged(record.id());
                } else {
                    evict(record.id(), record.expired() || record.expiry() != null ? "node expired" : "node logged out");
                    if (wasLive) {
                        markRemoved(record.id());
                    }
                }
            }
            case NodeEntity.NodeRemoved(long nodeId, String user) -> {
                keyGone(removeRecord(nodeId), "node deleted");
                boolean wasLive = visible.contains(nodeId);
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
        NodeRecord record = records.get(message.nodeId());
        if (!live(record) && live(message.record())) {
            record = message.record();
            putRecord(record);
        }
        if (!live(record)) {
            message.session().tell(new Evict("node is not registered or has expired"));
            return this;
        }
        elsewhere.remove(message.nodeId());
        ActorRef<SessionOutput> previous = sessions.put(message.nodeId(), message.session());
        if (previous != null && !previous.equals(message.session())) {
            previous.tell(new Evict("replaced by a newer session of the same node"));
        }
        reapGeneration.remove(message.nodeId());
        setPresence(message.nodeId(), new Presence(true, clock.instant(), List.copyOf(message.endpoints()), null));
        markChanged(message.nodeId());
        message.session().tell(new SendEncoded(fullMapFor(message.nodeId())));
        return this;
    }

    private Behavior<Command> onDisconnect(Disconnect message) {
        if (!message.session().equals(sessions.get(message.nodeId()))) {
            return this; // an older, replaced session
        }
        sessions.remove(message.nodeId());
        Presence moved = elsewhere.remove(message.nodeId());
        if (moved != null && moved.online()) {
            // It reconnected to another replica before this session closed: it is online there.
            presence.put(message.nodeId(), moved);
            markChanged(message.nodeId());
            return this;
        }
        Presence old = presence.get(message.nodeId());
        setPresence(message.nodeId(), new Presence(false, clock.instant(), old == null ? List.of() : old.endpoints(), old == null ? null : old.homeRelay()));
        NodeRecord record = records.get(message.nodeId());
        if (record != null && record.ephemeral()) {
            long generation = reapGeneration.merge(message.nodeId(), 1L, Long::sum);
            timers.startSingleTimer("reap-" + message.nodeId(), new ReapEphemeral(message.nodeId(), generation), ephemeralTimeout);
        }
        if (live(record)) {
            markChanged(message.nodeId());
        }
        return this;
    }

    private Behavior<Command> onUpdateEndpoints(UpdateEndpoints message) {
        Presence old = presence.get(message.nodeId());
        if (old != null && (!old.endpoints().equals(message.endpoints())
                || (message.homeRelay() != null && !message.homeRelay().equals(old.homeRelay())))) {
            setPresence(message.nodeId(), new Presence(old.online(), clock.instant(), List.copyOf(message.endpoints()),
                    message.homeRelay() != null ? message.homeRelay() : old.homeRelay()));
            markChanged(message.nodeId());
        }
        return this;
    }

    private Behavior<Command> onGetPresence(GetPresence message) {
        message.replyTo().tell(Map.copyOf(presence));
        return this;
    }

    private Behavior<Command> onReap(ReapEphemeral message) {
        Long generation = reapGeneration.get(message.nodeId());
        if (generation != null && generation == message.generation() && !sessions.containsKey(message.nodeId())) {
            reapGeneration.remove(message.nodeId());
            getContext().getLog().info("deleting ephemeral node {}: offline for {}", message.nodeId(), ephemeralTimeout);
            reaper.accept(message.nodeId());
        }
        return this;
    }

    private Behavior<Command> checkExpiry() {
        Instant now = clock.instant();
        for (NodeRecord record : new ArrayList<>(records.values())) {
            if (record.expiry() != null && !record.expiry().isAfter(now) && visible.contains(record.id())) {
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
        ActorRef<SessionOutput> session = sessions.remove(nodeId);
        if (session != null) {
            session.tell(new Evict(reason));
        }
    }

    private void markChanged(long nodeId) {
        visible.add(nodeId);
        encoded.remove(nodeId);
        removed.remove(nodeId);
        changed.add(nodeId);
        scheduleFlush();
    }

    private void markRemoved(long nodeId) {
        visible.remove(nodeId);
        encoded.remove(nodeId);
        changed.remove(nodeId);
        removed.add(nodeId);
        scheduleFlush();
    }

    private void scheduleFlush() {
        if (!flushScheduled) {
            flushScheduled = true;
            timers.startSingleTimer("flush", new Flush(), BATCH_WINDOW);
        }
    }

    /** One delta for everybody: the changed nodes' JSON and the removed ids, encoded once. */
    private Behavior<Command> flush() {
        flushScheduled = false;
        List<Long> changedNow = new ArrayList<>();
        for (long id : changed) {
            if (live(records.get(id))) {
                changedNow.add(id);
            }
        }
        List<Long> removedNow = new ArrayList<>(removed);
        changed.clear();
        removed.clear();
        if (changedNow.isEmpty() && removedNow.isEmpty()) {
            return this;
        }
        byte[] shared = deltaJson(changedNow, removedNow, -1);
        for (Map.Entry<Long, ActorRef<SessionOutput>> entry : sessions.entrySet()) {
            long self = entry.getKey();
            // A node's own change comes to it as "self"; everyone else gets the shared bytes.
            byte[] json = changedNow.contains(self) ? deltaJson(changedNow, removedNow, self) : shared;
            entry.getValue().tell(new SendEncoded(json));
        }
        return this;
    }

    // ---- encoding ----------------------------------------------------------------------------

    private byte[] nodeJson(long id) {
        return encoded.computeIfAbsent(id, k -> {
            try {
                return ControlJson.MAPPER.writeValueAsBytes(info(records.get(k)));
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new IllegalStateException(e);
            }
        });
    }

    ControlMessage.NodeInfo info(NodeRecord record) {
        Presence p = presence.get(record.id());
        List<String> addresses = new ArrayList<>();
        if (record.ipv4() != null) addresses.add(record.ipv4());
        if (record.ipv6() != null) addresses.add(record.ipv6());
        return new ControlMessage.NodeInfo(record.id(), record.hostname(), record.user(), record.nodeKey(), addresses,
                p == null ? List.of() : p.endpoints(), p != null && p.online(), p == null ? null : p.lastSeen(),
                record.tags(), record.expiry(), record.ephemeral(), p == null ? null : p.homeRelay());
    }

    private byte[] fullMapFor(long self) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ascii("{\"type\":\"full-map\",\"self\":"));
        out.writeBytes(nodeJson(self));
        out.writeBytes(ascii(",\"network\":"));
        out.writeBytes(json(network));
        out.writeBytes(ascii(",\"peers\":["));
        boolean first = true;
        for (NodeRecord record : records.values()) {
            if (record.id() == self || !live(record)) {
                continue;
            }
            if (!first) out.write(',');
            first = false;
            out.writeBytes(nodeJson(record.id()));
        }
        out.writeBytes(ascii("]}"));
        return out.toByteArray();
    }

    private byte[] deltaJson(List<Long> changedIds, List<Long> removedIds, long self) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ascii("{\"type\":\"map-delta\",\"self\":"));
        out.writeBytes(self >= 0 ? nodeJson(self) : ascii("null"));
        out.writeBytes(ascii(",\"upserted\":["));
        boolean first = true;
        for (long id : changedIds) {
            if (id == self) continue;
            if (!first) out.write(',');
            first = false;
            out.writeBytes(nodeJson(id));
        }
        out.writeBytes(ascii("],\"removed\":"));
        out.writeBytes(json(removedIds));
        out.write('}');
        return out.toByteArray();
    }

    private static byte[] json(Object value) {
        try {
            return ControlJson.MAPPER.writeValueAsBytes(value);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }
}
