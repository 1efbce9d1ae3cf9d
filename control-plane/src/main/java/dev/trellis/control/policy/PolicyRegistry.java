package dev.trellis.control.policy;

import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.persistence.CborSerializable;
import java.time.Clock;
import java.time.Instant;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * The access policy of the whole network: the text an admin set (checked and tested before it is
 * accepted), and its version, which counts every change. One entity for the cluster, like the other
 * registries; every change and every recovery is told to {@code listener} (each replica's network
 * map, through a cluster topic), so nodes everywhere follow it.
 */
public final class PolicyRegistry
    extends EventSourcedBehavior<
        PolicyRegistry.Command, PolicyRegistry.Event, PolicyRegistry.State> {

  public static final PersistenceId PERSISTENCE_ID = PersistenceId.ofUniqueId("policy");

  /**
   * The policy in force: {@code text} null means none (everything is allowed); {@code version} 0
   * means none was ever set.
   */
  public record Current(String text, long version, Instant setAt) implements CborSerializable {
    public static final Current NONE = new Current(null, 0, null);
  }

  /** What the maps hear. */
  public record PolicyChanged(Current current) implements CborSerializable {}

  public sealed interface Command extends CborSerializable {}

  /** Checks, tests and (if all pass) puts {@code text} in force. */
  public record SetPolicy(String text, ActorRef<Result<Current>> replyTo) implements Command {}

  /** Removes the policy: everything is allowed again. */
  public record ClearPolicy(ActorRef<Result<Current>> replyTo) implements Command {}

  public record GetPolicy(ActorRef<Current> replyTo) implements Command {}

  /** Tells the listener the current policy again (a replica that just started asks for it). */
  public record Announce() implements Command {}

  public sealed interface Event extends CborSerializable {}

  public record PolicySet(String text, Instant at) implements Event {}

  public record PolicyCleared(Instant at) implements Event {}

  public record State(Current current) implements CborSerializable {}

  public static Behavior<Command> create(ActorRef<PolicyChanged> listener) {
    return new PolicyRegistry(listener, Clock.systemUTC());
  }

  private final ActorRef<PolicyChanged> listener;
  private final Clock clock;

  private PolicyRegistry(ActorRef<PolicyChanged> listener, Clock clock) {
    super(PERSISTENCE_ID);
    this.listener = listener;
    this.clock = clock;
  }

  @Override
  public State emptyState() {
    return new State(Current.NONE);
  }

  @Override
  public RetentionCriteria retentionCriteria() {
    return RetentionCriteria.snapshotEvery(50, 2);
  }

  @Override
  public SignalHandler<State> signalHandler() {
    return newSignalHandlerBuilder()
        .onSignal(
            RecoveryCompleted.instance(),
            state -> listener.tell(new PolicyChanged(state.current())))
        .build();
  }

  @Override
  public CommandHandler<Command, Event, State> commandHandler() {
    return (state, command) ->
        switch (command) {
          case GetPolicy g -> Effect().reply(g.replyTo(), state.current());
          case Announce a ->
              Effect().none().thenRun(s -> listener.tell(new PolicyChanged(s.current())));
          case SetPolicy c -> set(state, c);
          case ClearPolicy c ->
              state.current().text() == null
                  ? Effect().reply(c.replyTo(), Result.ok(state.current()))
                  : Effect()
                      .persist(new PolicyCleared(clock.instant()))
                      .thenRun(s -> listener.tell(new PolicyChanged(s.current())))
                      .thenReply(c.replyTo(), s -> Result.ok(s.current()));
        };
  }

  private Effect<Event, State> set(State state, SetPolicy c) {
    if (c.text() == null || c.text().isBlank()) {
      return Effect().reply(c.replyTo(), Result.rejected(Code.INVALID, "the policy is empty"));
    }
    try {
      Policy.parse(c.text());
    } catch (PolicyException e) {
      return Effect().reply(c.replyTo(), Result.rejected(Code.INVALID, e.getMessage()));
    }
    if (c.text().equals(state.current().text())) {
      return Effect().reply(c.replyTo(), Result.ok(state.current()));
    }
    return Effect()
        .persist(new PolicySet(c.text(), clock.instant()))
        .thenRun(s -> listener.tell(new PolicyChanged(s.current())))
        .thenReply(c.replyTo(), s -> Result.ok(s.current()));
  }

  @Override
  public EventHandler<State, Event> eventHandler() {
    return (state, event) ->
        switch (event) {
          case PolicySet e ->
              new State(new Current(e.text(), state.current().version() + 1, e.at()));
          case PolicyCleared e ->
              new State(new Current(null, state.current().version() + 1, e.at()));
        };
  }
}
