package dev.trellis.control.cluster;

import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.sharding.typed.javadsl.Entity;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityRef;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityTypeKey;

/**
 * A registry (users, auth keys, API keys, addresses) is one event-sourced entity for the whole
 * cluster. Cluster Sharding places it on one control member and, when that member goes, starts it
 * on a survivor, which recovers it from the shared journal. Callers keep a plain ActorRef: a local
 * forwarder to wherever the entity is now.
 */
public record ShardedRegistry<C>(ActorRef<C> ref, StandIn.Target<C> target) {
  public static final String ENTITY_ID = "all";

  /**
   * Starts sharding the registry on this member: {@code ref} forwards to the entity wherever it is,
   * {@code target} is the same entity as a login reaches it (with a {@link StandIn}).
   */
  public static <C> ShardedRegistry<C> start(
      ActorContext<?> ctx, Class<C> protocol, String name, Supplier<Behavior<C>> behavior) {
    ClusterSharding sharding = ClusterSharding.get(ctx.getSystem());
    EntityTypeKey<C> key = EntityTypeKey.create(protocol, name);
    sharding.init(Entity.of(key, entity -> behavior.get()).withRole(ClusterSettings.ROLE_CONTROL));
    EntityRef<C> entity = sharding.entityRefFor(key, ENTITY_ID);
    ActorRef<C> forwarder =
        ctx.spawn(
            Behaviors.<C>receiveMessage(
                command -> {
                  entity.tell(command);
                  return Behaviors.same();
                }),
            name);
    return new ShardedRegistry<>(forwarder, new StandIn.Target<>(name, entity, behavior));
  }
}
