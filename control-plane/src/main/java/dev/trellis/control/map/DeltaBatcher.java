package dev.trellis.control.map;

import dev.trellis.control.map.NetworkMap.SendEncoded;
import dev.trellis.control.map.NetworkMap.SessionOutput;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.LongPredicate;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Collects which nodes changed or went away during one batch window and delivers them as one delta
 * to every session, encoded once for all of them (plus once per changed node that has a session,
 * for its own "self" copy). It decides nothing about what changed: {@link NetworkMap} says so.
 *
 * <p>Not thread-safe: touched only on the NetworkMap actor's thread.
 */
final class DeltaBatcher {
  /** What one flush sends: nodes to upsert and ids to remove, in the order they were marked. */
  record Batch(List<Long> changed, List<Long> removed) {
    boolean isEmpty() {
      return changed.isEmpty() && removed.isEmpty();
    }
  }

  private final Runnable scheduleFlush;

  /** Nodes that peers currently see in their maps. */
  private final Set<Long> visible = new HashSet<>();

  private final Set<Long> changed = new LinkedHashSet<>();
  private final Set<Long> removed = new LinkedHashSet<>();
  private boolean flushScheduled;

  /** When the batch's first change was marked (System.nanoTime). */
  private long batchStartedNanos;

  /**
   * {@code scheduleFlush} arranges for {@link #flush} to run after the batch window; called once
   * per batch.
   */
  DeltaBatcher(Runnable scheduleFlush) {
    this.scheduleFlush = scheduleFlush;
  }

  /** Whether peers currently see the node (it was sent as changed and not removed since). */
  boolean visible(long nodeId) {
    return visible.contains(nodeId);
  }

  void changed(long nodeId) {
    visible.add(nodeId);
    removed.remove(nodeId);
    changed.add(nodeId);
    schedule();
  }

  void removed(long nodeId) {
    visible.remove(nodeId);
    changed.remove(nodeId);
    removed.add(nodeId);
    schedule();
  }

  private void schedule() {
    if (!flushScheduled) {
      flushScheduled = true;
      batchStartedNanos = System.nanoTime();
      scheduleFlush.run();
    }
  }

  /** When the current batch's first change was marked (System.nanoTime). */
  long batchStartedNanos() {
    return batchStartedNanos;
  }

  /** Ends the batch: what was marked, keeping of the changed nodes only those {@code live} now. */
  Batch drain(LongPredicate live) {
    flushScheduled = false;
    List<Long> changedNow = new ArrayList<>();
    for (long id : changed) {
      if (live.test(id)) {
        changedNow.add(id);
      }
    }
    List<Long> removedNow = new ArrayList<>(removed);
    changed.clear();
    removed.clear();
    return new Batch(changedNow, removedNow);
  }

  /** Ends the batch and sends its delta to every session; returns how many sessions got one. */
  int flush(LongPredicate live, MapEncoder encoder, Map<Long, ActorRef<SessionOutput>> sessions) {
    Batch batch = drain(live);
    if (batch.isEmpty()) {
      return 0;
    }
    byte[] shared = encoder.delta(batch.changed(), batch.removed(), -1);
    for (Map.Entry<Long, ActorRef<SessionOutput>> entry : sessions.entrySet()) {
      long self = entry.getKey();
      // A node's own change comes to it as "self"; everyone else gets the shared bytes.
      byte[] json =
          batch.changed().contains(self)
              ? encoder.delta(batch.changed(), batch.removed(), self)
              : shared;
      entry.getValue().tell(new SendEncoded(json));
    }
    return sessions.size();
  }
}
