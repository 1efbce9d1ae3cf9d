package dev.trellis.control.cluster;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * Asks every actor registered under a service key across the cluster (one per member, typically)
 * and collects the answers that come within the timeout; a member that does not answer is left out
 * rather than failing the whole question.
 */
public final class AskEveryMember {
  private AskEveryMember() {}

  public static <C, R> CompletionStage<List<R>> ask(
      ActorSystem<?> system,
      ServiceKey<C> key,
      Duration timeout,
      Function<ActorRef<R>, C> message) {
    return AskPattern.<Receptionist.Command, Receptionist.Listing>ask(
            system.receptionist(), r -> Receptionist.find(key, r), timeout, system.scheduler())
        .thenCompose(
            listing -> {
              List<CompletableFuture<R>> asks = new ArrayList<>();
              for (ActorRef<C> member : listing.getServiceInstances(key)) {
                asks.add(
                    AskPattern.<C, R>ask(member, message::apply, timeout, system.scheduler())
                        .toCompletableFuture()
                        .exceptionally(e -> null));
              }
              return CompletableFuture.allOf(asks.toArray(CompletableFuture[]::new))
                  .thenApply(
                      v ->
                          asks.stream()
                              .map(CompletableFuture::join)
                              .filter(Objects::nonNull)
                              .toList());
            });
  }
}
