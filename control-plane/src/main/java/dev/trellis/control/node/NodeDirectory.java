package dev.trellis.control.node;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * Spawns one {@link NodeEntity} per node id on first use and forwards commands to it.
 *
 * <p>Entities publish through the directory, which passes everything on to the listener. When a
 * node is deleted the directory sends the entity a stop through its mailbox and holds new commands
 * for that id until it has stopped; they then go to a fresh entity, which recovers as deleted and
 * answers NOT_FOUND. So no command is lost to a stopping entity.
 */
public final class NodeDirectory extends AbstractBehavior<NodeDirectory.Command> {

  public sealed interface Command {}

  public record Forward(long nodeId, NodeEntity.Command command) implements Command {}

  /** Spawns every listed entity so it recovers and publishes its state. */
  public record SpawnAll(List<Long> nodeIds) implements Command {}

  private record Publish(NodeEntity.Published published) implements Command {}

  private record EntityStopped(long nodeId) implements Command {}

  public static Behavior<Command> create(ActorRef<NodeEntity.Published> listener) {
    return Behaviors.setup(context -> new NodeDirectory(context, listener));
  }

  private final ActorRef<NodeEntity.Published> listener;
  private final ActorRef<NodeEntity.Published> publishAdapter;
  private final Map<Long, ActorRef<NodeEntity.Command>> entities = new HashMap<>();
  /** Commands held for entities that are stopping after a delete. */
  private final Map<Long, List<NodeEntity.Command>> held = new HashMap<>();

  private NodeDirectory(ActorContext<Command> context, ActorRef<NodeEntity.Published> listener) {
    super(context);
    this.listener = listener;
    this.publishAdapter = context.messageAdapter(NodeEntity.Published.class, Publish::new);
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(Forward.class, this::onForward)
        .onMessage(SpawnAll.class, this::onSpawnAll)
        .onMessage(Publish.class, this::onPublish)
        .onMessage(EntityStopped.class, this::onEntityStopped)
        .build();
  }

  private Behavior<Command> onForward(Forward forward) {
    List<NodeEntity.Command> waiting = held.get(forward.nodeId());
    if (waiting != null) waiting.add(forward.command());
    else entity(forward.nodeId()).tell(forward.command());
    return this;
  }

  private Behavior<Command> onSpawnAll(SpawnAll spawnAll) {
    for (long nodeId : spawnAll.nodeIds()) if (!held.containsKey(nodeId)) entity(nodeId);
    return this;
  }

  private Behavior<Command> onPublish(Publish publish) {
    listener.tell(publish.published());
    if (publish.published() instanceof NodeEntity.NodeRemoved removed) {
      ActorRef<NodeEntity.Command> entity = entities.get(removed.nodeId());
      if (entity != null && !held.containsKey(removed.nodeId())) {
        held.put(removed.nodeId(), new ArrayList<>());
        entity.tell(NodeEntity.stop());
      }
    }
    return this;
  }

  private Behavior<Command> onEntityStopped(EntityStopped stopped) {
    entities.remove(stopped.nodeId());
    List<NodeEntity.Command> waiting = held.remove(stopped.nodeId());
    if (waiting != null && !waiting.isEmpty()) {
      ActorRef<NodeEntity.Command> entity = entity(stopped.nodeId());
      waiting.forEach(entity::tell);
    }
    return this;
  }

  private ActorRef<NodeEntity.Command> entity(long nodeId) {
    return entities.computeIfAbsent(nodeId, id -> {
      ActorRef<NodeEntity.Command> entity = getContext().spawn(NodeEntity.create(id, publishAdapter), "node-" + id);
      getContext().watchWith(entity, new EntityStopped(id));
      return entity;
    });
  }
}
