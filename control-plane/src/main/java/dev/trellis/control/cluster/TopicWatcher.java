package dev.trellis.control.cluster;

import java.time.Duration;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.pubsub.Topic;

/**
 * Topics learn of each other's subscribers through the receptionist, a little after a replica
 * starts. What is published in between does not reach it. This watcher asks the local topics how
 * many instances they know every {@link #POLL}, and when any count grows calls {@code resync},
 * which publishes the current state again.
 */
public final class TopicWatcher {
  static final Duration POLL = Duration.ofSeconds(1);

  private TopicWatcher() {}

  private sealed interface Message {}

  private record Poll() implements Message {}

  private record Stats(int index, Topic.TopicStats stats) implements Message {}

  public static Behavior<Void> create(
      List<ActorRef<Topic.Command<Object>>> topics, Runnable resync) {
    return Behaviors.<Message>setup(
            ctx ->
                Behaviors.withTimers(
                    timers -> {
                      timers.startTimerWithFixedDelay(new Poll(), POLL);
                      int[] known = new int[topics.size()];
                      return Behaviors.receiveMessage(
                          m -> {
                            switch (m) {
                              case Poll p -> {
                                for (int i = 0; i < topics.size(); i++) {
                                  int index = i;
                                  ctx.ask(
                                      Topic.TopicStats.class,
                                      topics.get(i),
                                      POLL,
                                      Topic::getTopicStats,
                                      (stats, failure) -> new Stats(index, stats));
                                }
                              }
                              case Stats s when s.stats() == null -> {}
                              case Stats s -> {
                                int instances = s.stats().topicInstanceCount();
                                if (instances > known[s.index()]) {
                                  known[s.index()] = instances;
                                  resync.run();
                                } else {
                                  known[s.index()] =
                                      instances; // a replica left: remember the lower count
                                }
                              }
                            }
                            return Behaviors.same();
                          });
                    }))
        .unsafeCast();
  }
}
