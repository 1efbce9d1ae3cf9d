package dev.trellis.control.relay;

import dev.trellis.control.map.NetworkMap;
import java.time.Duration;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Who may use a relay: the control plane's word on whether a node key belongs to a registered, live
 * node, and on keys that stop being live (their connections are closed).
 */
public interface NodeKeyAuthority {
  /** Whether {@code nodeKey} (base64) may connect now. */
  CompletionStage<Boolean> isLive(String nodeKey);

  /** From now on, closes the connections in {@code registry} whose key stops being live. */
  void watch(RelayRegistry registry);

  /**
   * The relay embedded in {@code trellis server}: asks its network map, which also says at once
   * when a key goes.
   */
  static NodeKeyAuthority of(
      ActorSystem<?> system, ActorRef<NetworkMap.Command> map, Duration timeout) {
    return new NodeKeyAuthority() {
      @Override
      public CompletionStage<Boolean> isLive(String nodeKey) {
        return AskPattern.ask(
            map,
            replyTo -> new NetworkMap.IsLiveNodeKey(nodeKey, replyTo),
            timeout,
            system.scheduler());
      }

      @Override
      public void watch(RelayRegistry registry) {
        system.systemActorOf(
            Behaviors.<NetworkMap.NodeKeyGone>setup(
                ctx -> {
                  map.tell(new NetworkMap.WatchNodeKeys(ctx.getSelf()));
                  return Behaviors.receiveMessage(
                      gone -> {
                        registry.evict(gone.nodeKey(), gone.reason());
                        return Behaviors.same();
                      });
                }),
            "relay-key-watcher",
            Props.empty());
      }
    };
  }
}
