package dev.trellis.control.node;

import dev.trellis.control.cluster.ClusterSettings;
import dev.trellis.control.cluster.StandIn;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.sharding.typed.javadsl.Entity;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityRef;

/**
 * The way to a node's {@link NodeEntity}, wherever in the cluster Cluster Sharding has placed it
 * (entity id = node id). A member that leaves takes its entities with it; the next command for one
 * starts it on a survivor, which recovers it from the journal. Sharding also buffers commands for
 * an entity that is passivating, so none is lost to a stopping entity.
 */
public final class NodeDirectory {
  private NodeDirectory() {}

  public sealed interface Command {}

  public record Forward(long nodeId, NodeEntity.Command command) implements Command {}

  /**
   * Asks every listed entity for its record, answered to this replica's map (starting it where
   * needed).
   */
  public record SpawnAll(List<Long> nodeIds) implements Command {}

  /**
   * Starts sharding node entities on this member (control role) and returns the directory. Entities
   * hosted here publish through {@code publisher} (the cluster-wide topic in a server); {@code
   * listener}, this replica's map side, hears every Announce answer.
   */
  public static Behavior<Command> create(
      ActorSystem<?> system,
      ActorRef<NodeEntity.Published> publisher,
      ActorRef<NodeEntity.Published> listener) {
    ClusterSharding sharding = ClusterSharding.get(system);
    sharding.init(
        Entity.of(
                NodeEntity.TYPE_KEY,
                ctx -> NodeEntity.create(Long.parseLong(ctx.getEntityId()), publisher))
            .withStopMessage(NodeEntity.stop())
            .withRole(ClusterSettings.ROLE_CONTROL));
    return Behaviors.receiveMessage(
        command -> {
          switch (command) {
            case Forward f -> entity(sharding, f.nodeId()).tell(f.command());
            case SpawnAll all -> {
              for (long id : all.nodeIds()) {
                entity(sharding, id).tell(new NodeEntity.Announce(listener));
              }
            }
          }
          return Behaviors.same();
        });
  }

  /**
   * A node's entity as a login reaches it: the sharded entity, or a {@link StandIn} publishing
   * through {@code publisher} when that one is on a lost member.
   */
  public static StandIn.Target<NodeEntity.Command> target(
      ActorSystem<?> system, ActorRef<NodeEntity.Published> publisher, long id) {
    return new StandIn.Target<>(
        "node-" + id,
        entity(ClusterSharding.get(system), id),
        () -> NodeEntity.create(id, publisher));
  }

  private static EntityRef<NodeEntity.Command> entity(ClusterSharding sharding, long id) {
    return sharding.entityRefFor(NodeEntity.TYPE_KEY, Long.toString(id));
  }
}
