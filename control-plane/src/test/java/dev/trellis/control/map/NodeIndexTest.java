package dev.trellis.control.map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.node.NodeRecord;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class NodeIndexTest {
  private static final Instant NOW = Instant.parse("2025-03-04T05:06:07Z");
  private final NodeIndex index = new NodeIndex(Clock.fixed(NOW, ZoneOffset.UTC));

  private static NodeRecord node(
      long id, String key, Instant expiry, boolean expired, boolean loggedOut) {
    return new NodeRecord(
        id,
        "m" + id,
        key,
        "alice",
        "h" + id,
        "100.64.0." + id,
        null,
        Set.of(),
        false,
        NOW,
        expiry,
        expired,
        loggedOut);
  }

  private static NodeRecord node(long id, String key) {
    return node(id, key, null, false, false);
  }

  @Test
  void putReturnsThePreviousRecordAndRemoveTheLast() {
    NodeRecord first = node(1, "k1");
    assertNull(index.put(first));
    NodeRecord second = node(1, "k1", NOW.plusSeconds(5), false, false);
    assertSame(first, index.put(second));
    assertSame(second, index.get(1));
    assertSame(second, index.remove(1));
    assertNull(index.get(1));
    assertNull(index.remove(1));
    assertTrue(index.all().isEmpty());
  }

  @Test
  void livenessFollowsFlagsAndTheClock() {
    index.put(node(1, "k1"));
    index.put(node(2, "k2", NOW.plusMillis(1), false, false));
    index.put(node(3, "k3", NOW, false, false));
    index.put(node(4, "k4", null, true, false));
    index.put(node(5, "k5", null, false, true));
    assertTrue(index.isLive(1));
    assertTrue(index.isLive(2));
    assertFalse(index.isLive(3), "expiry is now");
    assertFalse(index.isLive(4), "expired");
    assertFalse(index.isLive(5), "logged out");
    assertFalse(index.isLive(6), "unknown");
    assertFalse(index.live(null));
    assertEquals(5, index.all().size());
  }

  @Test
  void nodeKeysAreLiveOnlyWhileTheirNodeIsAndHoldsThem() {
    index.put(node(1, "k1"));
    assertTrue(index.isLiveNodeKey("k1"));
    index.put(node(1, "k1b"));
    assertFalse(index.isLiveNodeKey("k1"), "re-keyed: the old key is gone");
    assertTrue(index.isLiveNodeKey("k1b"));
    index.put(node(1, "k1b", null, false, true));
    assertFalse(index.isLiveNodeKey("k1b"), "logged out");
    index.put(node(1, "k1b"));
    index.remove(1);
    assertFalse(index.isLiveNodeKey("k1b"), "deleted");
    assertFalse(index.isLiveNodeKey("never"));
  }

  @Test
  void aKeyMovedToAnotherNodeStaysWithIt() {
    index.put(node(1, "shared"));
    index.put(node(2, "shared"));
    index.put(node(1, "other")); // node 1 changes key: "shared" still belongs to node 2
    assertTrue(index.isLiveNodeKey("shared"));
    index.remove(1);
    assertTrue(index.isLiveNodeKey("shared"));
  }

  @Test
  void liveNodeKeysFiltersInTheOrderGiven() {
    index.put(node(1, "a"));
    index.put(node(2, "b", null, true, false));
    index.put(node(3, "c"));
    Set<String> asked = new LinkedHashSet<>(List.of("c", "b", "x", "a"));
    assertEquals(List.of("c", "a"), List.copyOf(index.liveNodeKeys(asked)));
  }
}
