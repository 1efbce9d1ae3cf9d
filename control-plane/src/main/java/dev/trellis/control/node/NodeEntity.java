package dev.trellis.control.node;

import dev.trellis.control.Keys;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.control.Tags;
import dev.trellis.persistence.CborSerializable;
import java.time.Clock;
import java.time.Instant;
import java.util.Optional;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityTypeKey;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * One node, persistence id {@code node-<id>}. Publishes {@link NodeChanged} after every persisted
 * change and once after recovery if live, {@link NodeRemoved} when deleted. A deleted node answers
 * NOT_FOUND to everything; Cluster Sharding passivates it when idle like any other.
 */
public final class NodeEntity
    extends EventSourcedBehavior<NodeEntity.Command, NodeEntity.Event, NodeEntity.State> {

  /** Crosses cluster members (sharding), so serializable. */
  public sealed interface Command extends CborSerializable {}

  /**
   * First registration, or a re-login with a new auth key: replaces user, tags, node key, ephemeral
   * flag, expiry, hostname and addresses, and clears expired and logged-out. {@code expiry} null =
   * never.
   */
  public record Register(
      String machineKey,
      String nodeKey,
      String user,
      String hostname,
      String ipv4,
      String ipv6,
      Set<String> tags,
      boolean ephemeral,
      Instant expiry,
      Instant now,
      ActorRef<Result<NodeRecord>> replyTo)
      implements Command {}

  public record RotateNodeKey(String newNodeKey, ActorRef<Result<NodeRecord>> replyTo)
      implements Command {}

  /** The caller has had the hostname approved by {@link AddressAllocator}. */
  public record Rename(String hostname, ActorRef<Result<NodeRecord>> replyTo) implements Command {}

  public record SetTags(Set<String> tags, ActorRef<Result<NodeRecord>> replyTo)
      implements Command {}

  public record Expire(Instant now, ActorRef<Result<NodeRecord>> replyTo) implements Command {}

  public record Logout(ActorRef<Result<NodeRecord>> replyTo) implements Command {}

  public record Delete(ActorRef<Result<NodeRecord>> replyTo) implements Command {}

  /** Empty if never registered or deleted. */
  public record Get(ActorRef<Optional<NodeRecord>> replyTo) implements Command {}

  /**
   * Tell {@code replyTo} the current record (NodeChanged), for a replica whose network map is
   * starting: entities already running elsewhere do not recover, so they publish nothing new.
   */
  public record Announce(ActorRef<Published> replyTo) implements Command {}

  /**
   * Sharding's stop message on passivation, sent through the mailbox: every command queued before
   * it is answered.
   */
  enum Stop implements Command {
    INSTANCE
  }

  public static Command stop() {
    return Stop.INSTANCE;
  }

  /** Published to every replica's network map (a cluster topic), so serializable. */
  public sealed interface Published extends CborSerializable {}

  public record NodeChanged(NodeRecord record) implements Published {}

  public record NodeRemoved(long nodeId, String user) implements Published {}

  public sealed interface Event extends CborSerializable {}

  public record NodeRegistered(
      String machineKey,
      String nodeKey,
      String user,
      String hostname,
      String ipv4,
      String ipv6,
      Set<String> tags,
      boolean ephemeral,
      Instant expiry,
      Instant at)
      implements Event {}

  public record NodeKeyRotated(String nodeKey) implements Event {}

  public record NodeRenamed(String hostname) implements Event {}

  public record NodeTagsSet(Set<String> tags) implements Event {}

  public record NodeExpired(Instant at) implements Event {}

  public record NodeLoggedOut() implements Event {}

  public record NodeDeleted() implements Event {}

  /** {@code record} null until registered; {@code deleted} is final. */
  public record State(NodeRecord record, boolean deleted) implements CborSerializable {
    Optional<NodeRecord> current() {
      return deleted ? Optional.empty() : Optional.ofNullable(record);
    }
  }

  /**
   * The entity kind Cluster Sharding places on the control members; the entity id is the node id.
   */
  public static final EntityTypeKey<Command> TYPE_KEY = EntityTypeKey.create(Command.class, "node");

  public static PersistenceId persistenceId(long nodeId) {
    return PersistenceId.ofUniqueId("node-" + nodeId);
  }

  public static Behavior<Command> create(long nodeId, ActorRef<Published> listener) {
    return create(nodeId, listener, Clock.systemUTC());
  }

  public static Behavior<Command> create(long nodeId, ActorRef<Published> listener, Clock clock) {
    return new NodeEntity(nodeId, listener, clock);
  }

  private final long nodeId;
  private final ActorRef<Published> listener;
  private final Clock clock;

  private NodeEntity(long nodeId, ActorRef<Published> listener, Clock clock) {
    super(persistenceId(nodeId));
    this.nodeId = nodeId;
    this.listener = listener;
    this.clock = clock;
  }

  @Override
  public State emptyState() {
    return new State(null, false);
  }

  @Override
  public RetentionCriteria retentionCriteria() {
    return RetentionCriteria.snapshotEvery(100, 2);
  }

  @Override
  public SignalHandler<State> signalHandler() {
    return newSignalHandlerBuilder()
        .onSignal(
            RecoveryCompleted.instance(),
            state ->
                state
                    .current()
                    .filter(record -> record.live(clock.instant()))
                    .ifPresent(record -> listener.tell(new NodeChanged(record))))
        .build();
  }

  @Override
  public CommandHandler<Command, Event, State> commandHandler() {
    return (state, command) -> {
      if (command == Stop.INSTANCE) return Effect().stop();
      if (command instanceof Get get) return Effect().reply(get.replyTo(), state.current());
      if (command instanceof Announce announce) {
        return Effect()
            .none()
            .thenRun(
                (State s) ->
                    s.current()
                        .filter(record -> record.live(clock.instant()))
                        .ifPresent(record -> announce.replyTo().tell(new NodeChanged(record))));
      }
      if (command instanceof Register register) return register(state, register);
      NodeRecord node = state.current().orElse(null);
      if (node == null)
        return Effect()
            .reply(replyTo(command), Result.rejected(Code.NOT_FOUND, "no node " + nodeId));
      return switch (command) {
        case RotateNodeKey c -> {
          if (!Keys.isPublicKey(c.newNodeKey())) yield invalid(c.replyTo(), "malformed node key");
          if (c.newNodeKey().equals(node.nodeKey()))
            yield Effect().reply(c.replyTo(), Result.ok(node));
          yield persist(new NodeKeyRotated(c.newNodeKey()), c.replyTo());
        }
        case Rename c -> {
          if (!Hostnames.isValid(c.hostname()))
            yield invalid(c.replyTo(), "invalid hostname '" + c.hostname() + "'");
          if (c.hostname().equals(node.hostname()))
            yield Effect().reply(c.replyTo(), Result.ok(node));
          yield persist(new NodeRenamed(c.hostname()), c.replyTo());
        }
        case SetTags c -> {
          String bad = Tags.firstInvalid(c.tags());
          if (bad != null) yield invalid(c.replyTo(), "invalid tag '" + bad + "'");
          if (Tags.copy(c.tags()).equals(node.tags()))
            yield Effect().reply(c.replyTo(), Result.ok(node));
          yield persist(new NodeTagsSet(Tags.copy(c.tags())), c.replyTo());
        }
        case Expire c ->
            node.expired()
                ? Effect().reply(c.replyTo(), Result.ok(node))
                : persist(new NodeExpired(c.now()), c.replyTo());
        case Logout c ->
            node.loggedOut()
                ? Effect().reply(c.replyTo(), Result.ok(node))
                : persist(new NodeLoggedOut(), c.replyTo());
        case Delete c ->
            Effect()
                .persist(new NodeDeleted())
                .thenRun(() -> listener.tell(new NodeRemoved(nodeId, node.user())))
                .thenReply(c.replyTo(), s -> Result.ok(node));
        case Register c -> throw new IllegalStateException("handled above");
        case Get c -> throw new IllegalStateException("handled above");
        case Announce c -> throw new IllegalStateException("handled above");
        case Stop c -> throw new IllegalStateException("handled above");
      };
    };
  }

  private Effect<Event, State> register(State state, Register c) {
    if (state.deleted())
      return Effect()
          .reply(c.replyTo(), Result.rejected(Code.NOT_FOUND, "node " + nodeId + " was deleted"));
    if (!Keys.isPublicKey(c.machineKey())) return invalid(c.replyTo(), "malformed machine key");
    if (!Keys.isPublicKey(c.nodeKey())) return invalid(c.replyTo(), "malformed node key");
    if (c.user() == null || c.user().isBlank()) return invalid(c.replyTo(), "a node needs a user");
    if (!Hostnames.isValid(c.hostname()))
      return invalid(c.replyTo(), "invalid hostname '" + c.hostname() + "'");
    if (c.ipv4() == null || c.ipv6() == null)
      return invalid(c.replyTo(), "a node needs an IPv4 and an IPv6 address");
    String bad = Tags.firstInvalid(c.tags());
    if (bad != null) return invalid(c.replyTo(), "invalid tag '" + bad + "'");
    if (c.now() == null) return invalid(c.replyTo(), "registration time missing");
    if (c.expiry() != null && !c.expiry().isAfter(c.now())) {
      return invalid(c.replyTo(), "expiry " + c.expiry() + " is not in the future");
    }
    NodeRecord node = state.record();
    if (node != null && !node.machineKey().equals(c.machineKey())) {
      return Effect()
          .reply(
              c.replyTo(),
              Result.rejected(Code.CONFLICT, "node " + nodeId + " belongs to another machine key"));
    }
    var event =
        new NodeRegistered(
            c.machineKey(),
            c.nodeKey(),
            c.user(),
            c.hostname(),
            c.ipv4(),
            c.ipv6(),
            Tags.copy(c.tags()),
            c.ephemeral(),
            c.expiry(),
            c.now());
    // A retried registration with nothing new is answered without another event.
    if (node != null && apply(state, event).record().equals(node))
      return Effect().reply(c.replyTo(), Result.ok(node));
    return persist(event, c.replyTo());
  }

  private Effect<Event, State> persist(Event event, ActorRef<Result<NodeRecord>> replyTo) {
    return Effect()
        .persist(event)
        .thenRun((State s) -> listener.tell(new NodeChanged(s.record())))
        .thenReply(replyTo, s -> Result.ok(s.record()));
  }

  private Effect<Event, State> invalid(ActorRef<Result<NodeRecord>> replyTo, String message) {
    return Effect().reply(replyTo, Result.rejected(Code.INVALID, message));
  }

  private static ActorRef<Result<NodeRecord>> replyTo(Command command) {
    return switch (command) {
      case Register c -> c.replyTo();
      case RotateNodeKey c -> c.replyTo();
      case Rename c -> c.replyTo();
      case SetTags c -> c.replyTo();
      case Expire c -> c.replyTo();
      case Logout c -> c.replyTo();
      case Delete c -> c.replyTo();
      case Get c -> throw new IllegalArgumentException("Get replies with an Optional");
      case Announce c -> throw new IllegalArgumentException("Announce has no reply");
      case Stop c -> throw new IllegalArgumentException("Stop has no reply");
    };
  }

  @Override
  public EventHandler<State, Event> eventHandler() {
    return this::apply;
  }

  private State apply(State state, Event event) {
    NodeRecord n = state.record();
    return switch (event) {
      case NodeRegistered e ->
          new State(
              new NodeRecord(
                  nodeId,
                  e.machineKey(),
                  e.nodeKey(),
                  e.user(),
                  e.hostname(),
                  e.ipv4(),
                  e.ipv6(),
                  Tags.copy(e.tags()),
                  e.ephemeral(),
                  n == null ? e.at() : n.createdAt(),
                  e.expiry(),
                  false,
                  false),
              false);
      case NodeKeyRotated e ->
          new State(
              new NodeRecord(
                  n.id(),
                  n.machineKey(),
                  e.nodeKey(),
                  n.user(),
                  n.hostname(),
                  n.ipv4(),
                  n.ipv6(),
                  n.tags(),
                  n.ephemeral(),
                  n.createdAt(),
                  n.expiry(),
                  n.expired(),
                  n.loggedOut()),
              false);
      case NodeRenamed e ->
          new State(
              new NodeRecord(
                  n.id(),
                  n.machineKey(),
                  n.nodeKey(),
                  n.user(),
                  e.hostname(),
                  n.ipv4(),
                  n.ipv6(),
                  n.tags(),
                  n.ephemeral(),
                  n.createdAt(),
                  n.expiry(),
                  n.expired(),
                  n.loggedOut()),
              false);
      case NodeTagsSet e ->
          new State(
              new NodeRecord(
                  n.id(),
                  n.machineKey(),
                  n.nodeKey(),
                  n.user(),
                  n.hostname(),
                  n.ipv4(),
                  n.ipv6(),
                  Tags.copy(e.tags()),
                  n.ephemeral(),
                  n.createdAt(),
                  n.expiry(),
                  n.expired(),
                  n.loggedOut()),
              false);
      // The expiry moves up to the moment of expiring, so listings show when it happened.
      case NodeExpired e ->
          new State(
              new NodeRecord(
                  n.id(),
                  n.machineKey(),
                  n.nodeKey(),
                  n.user(),
                  n.hostname(),
                  n.ipv4(),
                  n.ipv6(),
                  n.tags(),
                  n.ephemeral(),
                  n.createdAt(),
                  n.expiry() == null || n.expiry().isAfter(e.at()) ? e.at() : n.expiry(),
                  true,
                  n.loggedOut()),
              false);
      case NodeLoggedOut e ->
          new State(
              new NodeRecord(
                  n.id(),
                  n.machineKey(),
                  n.nodeKey(),
                  n.user(),
                  n.hostname(),
                  n.ipv4(),
                  n.ipv6(),
                  n.tags(),
                  n.ephemeral(),
                  n.createdAt(),
                  n.expiry(),
                  n.expired(),
                  true),
              false);
      case NodeDeleted e -> new State(n, true);
    };
  }
}
