package dev.trellis.control.relay;

import dev.trellis.control.cluster.AskEveryMember;
import dev.trellis.control.map.NetworkMap;
import dev.trellis.persistence.CborSerializable;
import dev.trellis.proto.control.ControlMessage;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;
import org.apache.pekko.cluster.typed.Cluster;

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

  /**
   * One relay: its region, the URL nodes reach it at, its static key and STUN port (null: none),
   * its member, connected nodes, packets/s forwarded lately.
   */
  public record RelayInfo(
      String region,
      String url,
      String key,
      Integer stunPort,
      String member,
      int connectedNodes,
      double packetsPerSecond,
      long packetsForwarded,
      long dropped)
      implements CborSerializable {}

  public record RelayList(List<RelayInfo> relays) implements CborSerializable {}

  /** The reporter for this member's relay; registers itself. */
  public static Behavior<Command> reporter(
      RelayServer relay, String url, String key, Integer stunPort) {
    return Behaviors.setup(
        ctx -> {
          ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
          String member = Cluster.get(ctx.getSystem()).selfMember().address().toString();
          return Behaviors.withTimers(
              timers -> {
                timers.startTimerWithFixedDelay(new Sample(), SAMPLE);
                long[] last = {relay.registry().stats().packetsForwarded(), System.nanoTime()};
                double[] rate = {0};
                return Behaviors.receiveMessage(
                    m -> {
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
                          d.replyTo()
                              .tell(
                                  new RelayInfo(
                                      st.region(),
                                      url,
                                      key,
                                      stunPort,
                                      member,
                                      st.connected(),
                                      rate[0],
                                      st.packetsForwarded(),
                                      st.dropped()));
                        }
                      }
                      return Behaviors.same();
                    });
              });
        });
  }

  private sealed interface WatcherMessage {}

  private record Listing(Receptionist.Listing listing) implements WatcherMessage {}

  private record Described(ActorRef<Command> relay, RelayInfo info) implements WatcherMessage {}

  /**
   * Builds the relay map from live membership: {@code own} (this member's relay, as configured),
   * every other member's relay as it describes itself (both in the mesh), then the configured
   * {@code others} not already there (relays on their own). Tells {@code map} whenever it changes —
   * relays that leave drop out.
   */
  public static Behavior<Void> mapWatcher(
      ActorRef<NetworkMap.Command> map,
      ControlMessage.RelayInfo own,
      List<ControlMessage.RelayInfo> others) {
    return Behaviors.<WatcherMessage>setup(
            ctx -> {
              String self = Cluster.get(ctx.getSystem()).selfMember().address().toString();
              ActorRef<Receptionist.Listing> adapter =
                  ctx.messageAdapter(Receptionist.Listing.class, Listing::new);
              ctx.getSystem().receptionist().tell(Receptionist.subscribe(KEY, adapter));
              Map<ActorRef<Command>, RelayInfo> live = new HashMap<>();
              Object[] told = {null};
              Runnable publish =
                  () -> {
                    List<ControlMessage.RelayInfo> relays = new ArrayList<>();
                    if (own != null) {
                      relays.add(own);
                    }
                    live.values().stream()
                        .filter(r -> !r.member().equals(self) && r.url() != null)
                        .sorted(
                            Comparator.comparing(RelayInfo::region).thenComparing(RelayInfo::url))
                        .forEach(
                            r ->
                                relays.add(
                                    new ControlMessage.RelayInfo(
                                        r.region(), r.url(), r.key(), r.stunPort(), true)));
                    for (var o : others) {
                      if (relays.stream()
                          .noneMatch(
                              r ->
                                  r.region().equals(o.region())
                                      && Objects.equals(r.url(), o.url()))) {
                        relays.add(o);
                      }
                    }
                    if (!relays.equals(told[0])) {
                      told[0] = relays;
                      map.tell(new NetworkMap.SetRelayMap(List.copyOf(relays)));
                    }
                  };
              publish.run();
              return Behaviors.<WatcherMessage>receiveMessage(
                  m -> {
                    switch (m) {
                      case Listing l -> {
                        // Unreachable members' relays too: a member that is briefly unreachable (a
                        // busy host)
                        // must not make every node re-home; one that is gone leaves once it is
                        // removed.
                        var current = l.listing().getAllServiceInstances(KEY);
                        live.keySet().retainAll(current);
                        for (ActorRef<Command> r : current) {
                          if (!live.containsKey(r)) {
                            ctx.ask(
                                RelayInfo.class,
                                r,
                                Duration.ofSeconds(5),
                                Describe::new,
                                (info, failure) -> new Described(r, info));
                          }
                        }
                        publish.run();
                      }
                      case Described d -> {
                        if (d.info() != null) {
                          live.put(d.relay(), d.info());
                          publish.run();
                        }
                      }
                    }
                    return Behaviors.same();
                  });
            })
        .unsafeCast();
  }

  /** Asks every registered relay; ones that do not answer within {@code timeout} are left out. */
  public static CompletionStage<RelayList> list(ActorSystem<?> system, Duration timeout) {
    return AskEveryMember.<Command, RelayInfo>ask(system, KEY, timeout, Describe::new)
        .thenApply(
            infos ->
                new RelayList(
                    infos.stream()
                        .sorted(
                            Comparator.comparing(RelayInfo::region)
                                .thenComparing(RelayInfo::member))
                        .toList()));
  }
}
