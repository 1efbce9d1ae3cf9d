package dev.trellis.control.user;

import static dev.trellis.control.CopyOnWrite.with;
import static dev.trellis.control.CopyOnWrite.without;

import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.persistence.CborSerializable;
import java.time.Clock;
import java.time.Instant;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;

/** All users and the node ids each one owns. One entity: users are few. */
public final class UserRegistry
    extends EventSourcedBehavior<UserRegistry.Command, UserRegistry.Event, UserRegistry.State> {

  public static final PersistenceId PERSISTENCE_ID = PersistenceId.ofUniqueId("users");
  private static final Pattern NAME = Pattern.compile("[a-z0-9][a-z0-9._@-]{0,62}");

  /** Crosses cluster members (the registry is a sharded entity), so serializable. */
  public sealed interface Command extends CborSerializable {}

  public record CreateUser(String name, ActorRef<Result<User>> replyTo) implements Command {}

  /** Refused with CONFLICT while the user still owns nodes. */
  public record DeleteUser(String name, ActorRef<Result<User>> replyTo) implements Command {}

  public record GetUser(String name, ActorRef<Optional<User>> replyTo) implements Command {}

  public record ListUsers(ActorRef<List<User>> replyTo) implements Command {}

  /** Answered once recorded; attaching a node twice changes nothing. */
  public record AttachNode(String user, long nodeId, ActorRef<Done> replyTo) implements Command {}

  /** Answered once recorded; detaching a node that is not attached changes nothing. */
  public record DetachNode(String user, long nodeId, ActorRef<Done> replyTo) implements Command {}

  public sealed interface Event extends CborSerializable {}

  public record UserCreated(long id, String name, Instant createdAt) implements Event {}

  public record UserDeleted(String name) implements Event {}

  public record NodeAttached(String user, long nodeId) implements Event {}

  public record NodeDetached(String user, long nodeId) implements Event {}

  public record StoredUser(long id, String name, Instant createdAt, Set<Long> nodeIds)
      implements CborSerializable {
    User view() {
      return new User(id, name, createdAt, nodeIds.size());
    }
  }

  /** Users by name; ids are never reused. */
  public record State(long nextId, Map<String, StoredUser> users) implements CborSerializable {}

  public static Behavior<Command> create() {
    return create(Clock.systemUTC());
  }

  public static Behavior<Command> create(Clock clock) {
    return Behaviors.setup(context -> new UserRegistry(context, clock));
  }

  public static boolean isValidName(String name) {
    return name != null && NAME.matcher(name).matches();
  }

  private final ActorContext<Command> context;
  private final Clock clock;

  private UserRegistry(ActorContext<Command> context, Clock clock) {
    super(PERSISTENCE_ID);
    this.context = context;
    this.clock = clock;
  }

  @Override
  public State emptyState() {
    return new State(1, Map.of());
  }

  @Override
  public RetentionCriteria retentionCriteria() {
    return RetentionCriteria.snapshotEvery(100, 2);
  }

  @Override
  public CommandHandler<Command, Event, State> commandHandler() {
    return (state, command) ->
        switch (command) {
          case CreateUser c -> create(state, c);
          case DeleteUser d -> delete(state, d);
          case GetUser g ->
              Effect()
                  .reply(
                      g.replyTo(),
                      Optional.ofNullable(state.users().get(g.name())).map(StoredUser::view));
          case ListUsers l ->
              Effect()
                  .reply(
                      l.replyTo(),
                      state.users().values().stream()
                          .map(StoredUser::view)
                          .sorted(Comparator.comparingLong(User::id))
                          .toList());
          case AttachNode a -> attach(state, a);
          case DetachNode d -> detach(state, d);
        };
  }

  private Effect<Event, State> create(State state, CreateUser command) {
    if (!isValidName(command.name())) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(
                  Code.INVALID,
                  "invalid user name '"
                      + command.name()
                      + "': 1-63 characters of a-z 0-9 . _ @ -, starting with a letter or digit"));
    }
    if (state.users().containsKey(command.name())) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(Code.ALREADY_EXISTS, "user " + command.name() + " already exists"));
    }
    var event = new UserCreated(state.nextId(), command.name(), clock.instant());
    return Effect()
        .persist(event)
        .thenReply(command.replyTo(), s -> Result.ok(s.users().get(command.name()).view()));
  }

  private Effect<Event, State> delete(State state, DeleteUser command) {
    StoredUser user = state.users().get(command.name());
    if (user == null) {
      return Effect()
          .reply(command.replyTo(), Result.rejected(Code.NOT_FOUND, "no user " + command.name()));
    }
    int nodes = user.nodeIds().size();
    if (nodes > 0) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(
                  Code.CONFLICT,
                  "user "
                      + command.name()
                      + " still has "
                      + nodes
                      + (nodes == 1 ? " node" : " nodes")
                      + "; delete them first"));
    }
    return Effect()
        .persist(new UserDeleted(command.name()))
        .thenReply(command.replyTo(), s -> Result.ok(user.view()));
  }

  private Effect<Event, State> attach(State state, AttachNode command) {
    StoredUser user = state.users().get(command.user());
    if (user == null) {
      context
          .getLog()
          .warn("Not attaching node {} to unknown user {}", command.nodeId(), command.user());
      return Effect().reply(command.replyTo(), Done.getInstance());
    }
    if (user.nodeIds().contains(command.nodeId()))
      return Effect().reply(command.replyTo(), Done.getInstance());
    return Effect()
        .persist(new NodeAttached(command.user(), command.nodeId()))
        .thenReply(command.replyTo(), s -> Done.getInstance());
  }

  private Effect<Event, State> detach(State state, DetachNode command) {
    StoredUser user = state.users().get(command.user());
    if (user == null || !user.nodeIds().contains(command.nodeId()))
      return Effect().reply(command.replyTo(), Done.getInstance());
    return Effect()
        .persist(new NodeDetached(command.user(), command.nodeId()))
        .thenReply(command.replyTo(), s -> Done.getInstance());
  }

  @Override
  public EventHandler<State, Event> eventHandler() {
    return (state, event) ->
        switch (event) {
          case UserCreated e ->
              new State(
                  Math.max(state.nextId(), e.id() + 1),
                  with(
                      state.users(),
                      e.name(),
                      new StoredUser(e.id(), e.name(), e.createdAt(), Set.of())));
          case UserDeleted e -> new State(state.nextId(), without(state.users(), e.name()));
          case NodeAttached e -> withNodes(state, e.user(), e.nodeId(), true);
          case NodeDetached e -> withNodes(state, e.user(), e.nodeId(), false);
        };
  }

  private static State withNodes(State state, String name, long nodeId, boolean attach) {
    StoredUser user = state.users().get(name);
    if (user == null) return state;
    Set<Long> nodeIds = attach ? with(user.nodeIds(), nodeId) : without(user.nodeIds(), nodeId);
    var updated = new StoredUser(user.id(), user.name(), user.createdAt(), nodeIds);
    return new State(state.nextId(), with(state.users(), name, updated));
  }
}
