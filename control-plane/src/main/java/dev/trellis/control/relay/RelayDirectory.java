package dev.trellis.control.relay;

import dev.trellis.persistence.CborSerializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * The relays of the cluster, for {@code trellis relays list}: every member running a relay
 * registers a reporter with the receptionist; listing asks them all. Each reporter samples its
 * relay's forwarded-packet counter every {@link #SAMPLE} for a packets/s figure.
 */
public final class RelayDirectory {
    public static final ServiceKey<Command> KEY = ServiceKey.create(Command.class, "trellis-relays");
    static final Duration SAMPLE = Duration.ofSeconds(5);

    private RelayDirectory() {}

    public sealed interface Command extends CborSerializable {}

    public record Describe(ActorRef<RelayInfo> replyTo) implements Command {}

    private record Sample() implements Command {}

    /** One relay: its region, URL (null: the server's own URL), member, connected nodes, packets/s forwarded lately. */
    public record RelayInfo(String region, String url, String member, int connectedNodes, double packetsPerSecond,
                            long packetsForwarded, long dropped) implements CborSerializable {}

    public record RelayList(List<RelayInfo> relays) implements CborSerializable {}

    /** The reporter for this member's relay; registers itself. */
    public static Behavior<Command> reporter(RelayServer relay, String url) {
        return Behaviors.setup(ctx -> {
            ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
            String member = org.apache.pekko.cluster.typed.Cluster.get(ctx.getSystem()).selfMember().address().toString();
            return Behaviors.withTimers(timers -> {
                timers.startTimerWithFixedDelay(new Sample(), SAMPLE);
                long[] last = {relay.registry().stats().packetsForwarded(), System.nanoTime()};
                double[] rate = {0};
                return Behaviors.receiveMessage(m -> {
                    switch (m) {
                        case Sample s -> {
                            long now = System.nanoTime();
                            long count = relay.registry().stats().packetsForwarded();
                            rate[0] = (count - last[0]) / ((now - last[1]) / 1e9);
                            last[0] = count;
                            last[1] = now;
                        }
                        case Describe d -> {
                            RelayRegistry.Stats st = relay.registry().stats();
                            d.replyTo().tell(new RelayInfo(st.region(), url, member, st.connected(), rate[0], st.packetsForwarded(),
                                    st.dropped()));
                        }
                    }
                    return Behaviors.same();
                });
            });
        });
    }

    /** Asks every registered relay; ones that do not answer within {@code timeout} are left out. */
    public static CompletionStage<RelayList> list(ActorSystem<?> system, Duration timeout) {
        CompletionStage<Receptionist.Listing> listing = AskPattern.ask(system.receptionist(),
                replyTo -> Receptionist.find(KEY, replyTo), timeout, system.scheduler());
        return listing.thenCompose(l -> {
            List<CompletableFuture<RelayInfo>> asks = new ArrayList<>();
            for (ActorRef<Command> r : l.getServiceInstances(KEY)) {
                asks.add(AskPattern.<Command, RelayInfo>ask(r, Describe::new, timeout, system.scheduler())
                        .toCompletableFuture().exceptionally(e -> null));
            }
            return CompletableFuture.allOf(asks.toArray(CompletableFuture[]::new)).thenApply(v -> new RelayList(asks.stream()
                    .map(CompletableFuture::join).filter(java.util.Objects::nonNull)
                    .sorted(Comparator.comparing(RelayInfo::region).thenComparing(RelayInfo::member)).toList()));
        });
    }
}
