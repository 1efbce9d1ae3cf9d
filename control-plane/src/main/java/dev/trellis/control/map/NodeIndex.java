package dev.trellis.control.map;

import dev.trellis.control.node.NodeRecord;
import java.time.Clock;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * The node store behind {@link NetworkMap}: every node's latest persisted record, by id and by node
 * key, and whether a record is live now. Holds no presence and sends nothing.
 *
 * <p>Not thread-safe: touched only on the NetworkMap actor's thread.
 */
final class NodeIndex {
  private final Clock clock;
  private final Map<Long, NodeRecord> records = new HashMap<>();

  /** Node id by node key, so the relay's admission check does not scan every record. */
  private final Map<String, Long> idByNodeKey = new HashMap<>();

  NodeIndex(Clock clock) {
    this.clock = clock;
  }

  /** Stores {@code record} in place of its node's previous one, which it returns (null: none). */
  NodeRecord put(NodeRecord record) {
    NodeRecord old = records.put(record.id(), record);
    if (old != null && old.nodeKey() != null && !old.nodeKey().equals(record.nodeKey())) {
      idByNodeKey.remove(old.nodeKey(), old.id());
    }
    if (record.nodeKey() != null) {
      idByNodeKey.put(record.nodeKey(), record.id());
    }
    return old;
  }

  /** Forgets a node; returns its last record (null: none). */
  NodeRecord remove(long nodeId) {
    NodeRecord old = records.remove(nodeId);
    if (old != null && old.nodeKey() != null) {
      idByNodeKey.remove(old.nodeKey(), nodeId);
    }
    return old;
  }

  NodeRecord get(long nodeId) {
    return records.get(nodeId);
  }

  /**
   * Every stored record, live or not, in no particular order (a view: do not change the index while
   * iterating).
   */
  Collection<NodeRecord> all() {
    return Collections.unmodifiableCollection(records.values());
  }

  /** Whether {@code record} is non-null and may be on the network now. */
  boolean live(NodeRecord record) {
    return record != null && record.live(clock.instant());
  }

  boolean isLive(long nodeId) {
    return live(records.get(nodeId));
  }

  /** Whether a base64 node key is the current key of a stored, live node. */
  boolean isLiveNodeKey(String nodeKey) {
    Long id = idByNodeKey.get(nodeKey);
    NodeRecord r = id == null ? null : records.get(id);
    return live(r) && nodeKey.equals(r.nodeKey());
  }

  /** The keys among {@code nodeKeys} that are live, in the order given. */
  Set<String> liveNodeKeys(Set<String> nodeKeys) {
    Set<String> live = new LinkedHashSet<>();
    for (String k : nodeKeys) {
      if (isLiveNodeKey(k)) {
        live.add(k);
      }
    }
    return live;
  }
}
