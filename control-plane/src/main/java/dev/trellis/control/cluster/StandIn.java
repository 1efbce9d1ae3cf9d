package dev.trellis.control.cluster;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.RecipientRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Asks a cluster-wide entity (a registry, a node), and when it does not answer in time, answers
 * with a stand-in: a fresh incarnation of the same event-sourced entity on this member, recovered
 * from the shared journal, that handles this one command and is gone {@link #LIFETIME} later.
 *
 * <p>Why: an entity on a member that was just killed is unreachable until the split-brain resolver
 * downs that member and sharding moves its shards (20 s and more with campus settings), and a login
 * needs up to four of them. The shared journal makes the stand-in safe: it recovers every event the
 * lost incarnation wrote, and PostgreSQL's primary key on (persistence id, sequence number) fails
 * the second of two writers that recovered the same history, so two incarnations can never fork it;
 * the loser's caller sees no answer and its node retries.
 *
 * <p>Stand-ins are used only with a shared journal ({@code enabled}); an embedded server's entities
 * live in its own JVM and cannot be lost without it. Thread safety: {@link #ask} may be called from
 * any thread; the suspicion timestamp is an atomic.
 */
public final class StandIn {
  private static final Logger LOG = LoggerFactory.getLogger(StandIn.class);

  /** How long an entity may be silent before a stand-in is started, when all looks well. */
  static final Duration PATIENCE = Duration.ofSeconds(2);

  /**
   * The same while a control member is unreachable or not up, or a stand-in was needed in the last
   * {@link #SUSPICION}: then a silent entity is most likely on the lost member.
   */
  static final Duration PATIENCE_WHILE_UNSETTLED = Duration.ofMillis(500);

  static final Duration SUSPICION = Duration.ofSeconds(30);

  /** A stand-in handles one command; this bounds how long it may take to recover and answer. */
  static final Duration LIFETIME = Duration.ofSeconds(10);

  /** The longest a caller waits for either answer. */
  public static final Duration ANSWER_TIMEOUT = Duration.ofSeconds(10);

  /**
   * An entity as callers reach it: {@code entity} the sharded way, {@code incarnation} how to
   * recover another one from the journal. {@code name} is for logs and actor names.
   */
  public record Target<C>(String name, RecipientRef<C> entity, Supplier<Behavior<C>> incarnation) {}

  private enum Expire {
    INSTANCE
  }

  private final ActorSystem<?> system;
  private final boolean enabled;
  private final Clock clock;
  private final AtomicReference<Instant> lastStandIn = new AtomicReference<>(Instant.MIN);
  private final AtomicLong counter = new AtomicLong();

  public StandIn(ActorSystem<?> system, boolean enabled, Clock clock) {
    this.system = system;
    this.enabled = enabled;
    this.clock = clock;
  }

  /** Whether this member stands in for silent entities (it has a shared journal). */
  public boolean enabled() {
    return enabled;
  }

  /**
   * The entity's answer, or the stand-in's when the entity stays silent; fails when neither answers
   * within {@link #ANSWER_TIMEOUT}.
   */
  public <C, R> CompletionStage<R> ask(Target<C> target, Function<ActorRef<R>, C> message) {
    CompletionStage<R> primary =
        AskPattern.ask(target.entity(), message::apply, ANSWER_TIMEOUT, system.scheduler());
    if (!enabled) {
      return primary;
    }
    CompletableFuture<R> answer = new CompletableFuture<>();
    // Fail only once every attempt started has failed; the first success wins.
    AtomicInteger outstanding = new AtomicInteger(1);
    primary.whenComplete((r, e) -> settle(answer, outstanding, r, e));
    Duration patience = unsettled() ? PATIENCE_WHILE_UNSETTLED : PATIENCE;
    system
        .scheduler()
        .scheduleOnce(
            patience,
            () -> {
              if (answer.isDone()) return;
              outstanding.incrementAndGet();
              lastStandIn.set(clock.instant());
              LOG.info(
                  "{} did not answer within {} ms: a stand-in recovered from the journal answers",
                  target.name(),
                  patience.toMillis());
              ActorRef<Object> standIn =
                  system.systemActorOf(
                      standIn(target.incarnation()),
                      "stand-in-" + target.name() + "-" + counter.incrementAndGet(),
                      Props.empty());
              AskPattern.<Object, R>ask(
                      standIn, message::apply, ANSWER_TIMEOUT.minus(patience), system.scheduler())
                  .whenComplete((r, e) -> settle(answer, outstanding, r, e));
            },
            system.executionContext());
    return answer;
  }

  private static <R> void settle(
      CompletableFuture<R> answer, AtomicInteger outstanding, R result, Throwable failure) {
    if (failure == null) {
      answer.complete(result);
    } else if (outstanding.decrementAndGet() == 0) {
      answer.completeExceptionally(failure);
    }
  }

  /** Whether the cluster looks like it is losing or just lost a member. */
  private boolean unsettled() {
    if (clock.instant().isBefore(lastStandIn.get().plus(SUSPICION))) return true;
    var state = Cluster.get(system).state();
    if (!state.getUnreachable().isEmpty()) return true;
    for (var member : state.getMembers()) {
      if (member.status() != MemberStatus.up()) return true;
    }
    return false;
  }

  /** One incarnation of the entity under a parent that ends both after {@link #LIFETIME}. */
  @SuppressWarnings("unchecked")
  private static <C> Behavior<Object> standIn(Supplier<Behavior<C>> incarnation) {
    return Behaviors.setup(
        ctx -> {
          ActorRef<C> entity = ctx.spawn(incarnation.get(), "entity");
          return Behaviors.withTimers(
              timers -> {
                timers.startSingleTimer(Expire.INSTANCE, LIFETIME);
                return Behaviors.receiveMessage(
                    m -> {
                      if (m == Expire.INSTANCE) return Behaviors.stopped();
                      entity.tell((C) m);
                      return Behaviors.same();
                    });
              });
        });
  }
}
