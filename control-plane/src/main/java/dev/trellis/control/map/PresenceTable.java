package dev.trellis.control.map;

import dev.trellis.control.map.NetworkMap.Presence;
import dev.trellis.control.map.NetworkMap.PresenceChanged;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Who is online, with endpoints and home relay, as this replica knows it: what its own sessions
 * report, and what the other replicas report for nodes whose sessions they hold. The rules for
 * which report wins live here; sending reports to the other replicas is {@link NetworkMap}'s job
 * (the methods return what to send).
 *
 * <p>Not thread-safe: touched only on the NetworkMap actor's thread.
 */
final class PresenceTable {
  private final String origin;
  private final Map<Long, Presence> presence = new HashMap<>();

  /**
   * Presence another replica reported for a node that still has a session here (it may be moving
   * there).
   */
  private final Map<Long, Presence> elsewhere = new HashMap<>();

  /** {@code origin}: this replica's name, as it signs the reports it sends. */
  PresenceTable(String origin) {
    this.origin = origin;
  }

  String origin() {
    return origin;
  }

  /** The node's presence, or null if it has never been seen. */
  Presence get(long nodeId) {
    return presence.get(nodeId);
  }

  /** Every known presence, as an immutable copy. */
  Map<Long, Presence> snapshot() {
    return Map.copyOf(presence);
  }

  /** The node's presence is forgotten (it was deleted). */
  void remove(long nodeId) {
    presence.remove(nodeId);
  }

  /**
   * A session of this replica logged in: the node is online here. Returns the presence to tell the
   * other replicas.
   */
  Presence connected(long nodeId, List<String> endpoints, Instant now) {
    elsewhere.remove(nodeId);
    Presence p = new Presence(true, now, List.copyOf(endpoints), null, null);
    presence.put(nodeId, p);
    return p;
  }

  /**
   * This replica's session of the node closed. If another replica reported the node online while
   * the session was still here, that report now counts and null is returned (nothing to tell);
   * otherwise the node is offline, keeping its last endpoints and home relay, and that presence is
   * returned to tell the other replicas.
   */
  Presence disconnected(long nodeId, Instant now) {
    Presence moved = elsewhere.remove(nodeId);
    if (moved != null && moved.online()) {
      presence.put(nodeId, moved);
      return null;
    }
    Presence old = presence.get(nodeId);
    Presence p =
        new Presence(
            false,
            now,
            old == null ? List.of() : old.endpoints(),
            old == null ? null : old.homeRelay(),
            old == null ? null : old.multicast());
    presence.put(nodeId, p);
    return p;
  }

  /**
   * New endpoints, home relay and multicast membership (null: unchanged) of a node seen before.
   * Returns the new presence to tell the other replicas, or null if nothing changed (or the node
   * was never seen).
   */
  Presence endpointsChanged(
      long nodeId, List<String> endpoints, String homeRelay, Boolean multicast, Instant now) {
    Presence old = presence.get(nodeId);
    if (old == null
        || (old.endpoints().equals(endpoints)
            && (homeRelay == null || homeRelay.equals(old.homeRelay()))
            && (multicast == null || multicast.equals(old.multicast())))) {
      return null;
    }
    Presence p =
        new Presence(
            old.online(),
            now,
            List.copyOf(endpoints),
            homeRelay != null ? homeRelay : old.homeRelay(),
            multicast != null ? multicast : old.multicast());
    presence.put(nodeId, p);
    return p;
  }

  /**
   * A report from a replica. Ignored when it is this replica's own, or older than what is known.
   * When {@code sessionHere} (this replica holds a session of the node, which wins) it is kept
   * aside until that session closes. Returns whether the node's presence changed.
   */
  boolean reported(PresenceChanged report, boolean sessionHere) {
    if (origin.equals(report.origin())) {
      return false;
    }
    if (sessionHere) {
      elsewhere.put(report.nodeId(), report.presence());
      return false;
    }
    Presence old = presence.get(report.nodeId());
    Presence p = report.presence();
    if (old != null
        && old.lastSeen() != null
        && p.lastSeen() != null
        && p.lastSeen().isBefore(old.lastSeen())) {
      return false; // older news than what we have
    }
    presence.put(report.nodeId(), p);
    return true;
  }
}
