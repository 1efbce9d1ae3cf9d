package dev.trellis.control.cluster;

import dev.trellis.control.map.NetworkMap;
import dev.trellis.persistence.CborSerializable;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * Which URLs nodes can log in at: every control member registers its server URL with the
 * receptionist, and each member's watcher hands the current set to its network map, which sends it
 * to the nodes (NetworkInfo.controlUrls). A member that leaves or crashes drops out of the set.
 */
public final class ControlEndpoints {
  public static final ServiceKey<Command> KEY =
      ServiceKey.create(Command.class, "trellis-control-endpoints");
  private static final Duration ASK_TIMEOUT = Duration.ofSeconds(5);

  private ControlEndpoints() {}

  public sealed interface Command extends CborSerializable {}

  public record Describe(ActorRef<Url> replyTo) implements Command {}

  public record Url(String url) implements CborSerializable {}

  /** This member's endpoint: registers itself and answers with {@code url}. */
  public static Behavior<Command> endpoint(String url) {
    return Behaviors.setup(
        ctx -> {
          ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
          return Behaviors.receiveMessage(
              m -> {
                if (m instanceof Describe d) {
                  d.replyTo().tell(new Url(url));
                }
                return Behaviors.same();
              });
        });
  }

  private sealed interface WatcherMessage {}

  private record Listing(Receptionist.Listing listing) implements WatcherMessage {}

  private record Answered(ActorRef<Command> endpoint, String url) implements WatcherMessage {}

  /**
   * Follows the registered endpoints and tells {@code map} the sorted set of their URLs whenever it
   * changes.
   */
  public static Behavior<Void> watcher(ActorRef<NetworkMap.Command> map) {
    return Behaviors.<WatcherMessage>setup(
            ctx -> {
              ActorRef<Receptionist.Listing> adapter =
                  ctx.messageAdapter(Receptionist.Listing.class, Listing::new);
              ctx.getSystem().receptionist().tell(Receptionist.subscribe(KEY, adapter));
              Map<ActorRef<Command>, String> urls = new HashMap<>();
              List<String>[] told = new List[] {List.of()};
              Runnable publish =
                  () -> {
                    List<String> now = List.copyOf(new TreeSet<>(urls.values()));
                    if (!now.equals(told[0])) {
                      told[0] = now;
                      map.tell(new NetworkMap.SetControlUrls(now));
                    }
                  };
              return Behaviors.receiveMessage(
                  m -> {
                    switch (m) {
                      case Listing l -> {
                        Set<ActorRef<Command>> current = l.listing().getServiceInstances(KEY);
                        urls.keySet().retainAll(current);
                        for (ActorRef<Command> e : current) {
                          if (!urls.containsKey(e)) {
                            ctx.ask(
                                Url.class,
                                e,
                                ASK_TIMEOUT,
                                Describe::new,
                                (url, failure) -> new Answered(e, url == null ? null : url.url()));
                          }
                        }
                        publish.run();
                      }
                      case Answered a -> {
                        if (a.url() != null) {
                          urls.put(a.endpoint(), a.url());
                          publish.run();
                        }
                      }
                    }
                    return Behaviors.same();
                  });
            })
        .unsafeCast();
  }
}
