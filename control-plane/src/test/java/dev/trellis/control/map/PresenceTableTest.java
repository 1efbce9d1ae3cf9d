package dev.trellis.control.map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.map.NetworkMap.Presence;
import dev.trellis.control.map.NetworkMap.PresenceChanged;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class PresenceTableTest {
  private static final Instant T = Instant.parse("2025-03-04T05:06:07Z");
  private final PresenceTable table = new PresenceTable("here");

  private static PresenceChanged from(String origin, long id, boolean online, Instant seen) {
    return new PresenceChanged(
        id, new Presence(online, seen, List.of("198.51.100.1:1"), "building-b", null), origin);
  }

  @Test
  void connectThenDisconnectKeepsEndpointsAndHome() {
    assertNull(table.get(1));
    Presence on = table.connected(1, List.of("192.0.2.1:1"), T);
    assertEquals(new Presence(true, T, List.of("192.0.2.1:1"), null, null), on);
    assertEquals(on, table.get(1));
    Presence moved =
        table.endpointsChanged(1, List.of("192.0.2.1:2"), "building-a", null, T.plusSeconds(1));
    assertEquals(
        new Presence(true, T.plusSeconds(1), List.of("192.0.2.1:2"), "building-a", null), moved);
    Presence off = table.disconnected(1, T.plusSeconds(2));
    assertEquals(
        new Presence(false, T.plusSeconds(2), List.of("192.0.2.1:2"), "building-a", null), off);
    assertEquals(Map.of(1L, off), table.snapshot());
    assertThrows(UnsupportedOperationException.class, () -> table.snapshot().clear());
    table.remove(1);
    assertNull(table.get(1));
  }

  @Test
  void multicastMembershipIsWhatTheNodeLastSaid() {
    table.connected(1, List.of("x:1"), T);
    assertNull(table.get(1).multicast(), "not said yet");
    Presence on = table.endpointsChanged(1, List.of("x:1"), null, true, T.plusSeconds(1));
    assertEquals(Boolean.TRUE, on.multicast());
    assertNull(table.endpointsChanged(1, List.of("x:1"), null, true, T.plusSeconds(2)), "same");
    assertNull(table.endpointsChanged(1, List.of("x:1"), null, null, T.plusSeconds(2)), "unsaid");
    assertEquals(Boolean.TRUE, table.disconnected(1, T.plusSeconds(3)).multicast());
    table.connected(1, List.of("x:1"), T.plusSeconds(4));
    Presence off = table.endpointsChanged(1, List.of("x:1"), null, false, T.plusSeconds(5));
    assertEquals(Boolean.FALSE, off.multicast());
  }

  @Test
  void disconnectingANeverSeenNodeMakesItOfflineWithNothing() {
    assertEquals(new Presence(false, T, List.of(), null, null), table.disconnected(7, T));
  }

  @Test
  void endpointsChangeOnlyWhenSomethingDoes() {
    assertNull(table.endpointsChanged(1, List.of("x:1"), "a", null, T), "never seen");
    table.connected(1, List.of("x:1"), T);
    assertNull(
        table.endpointsChanged(1, List.of("x:1"), null, null, T.plusSeconds(1)),
        "same endpoints, home unchanged");
    Presence home = table.endpointsChanged(1, List.of("x:1"), "a", null, T.plusSeconds(2));
    assertEquals("a", home.homeRelay());
    assertNull(table.endpointsChanged(1, List.of("x:1"), "a", null, T.plusSeconds(3)), "same home");
    Presence moved = table.endpointsChanged(1, List.of("x:2"), null, null, T.plusSeconds(4));
    assertEquals(
        new Presence(true, T.plusSeconds(4), List.of("x:2"), "a", null),
        moved,
        "null home keeps the old one");
  }

  @Test
  void reportsFromOtherReplicasCountUnlessOwnOrOlder() {
    assertFalse(table.reported(from("here", 1, true, T), false), "own report");
    assertNull(table.get(1));
    assertTrue(table.reported(from("there", 1, true, T), false));
    assertEquals(from("there", 1, true, T).presence(), table.get(1));
    assertFalse(table.reported(from("there", 1, false, T.minusSeconds(1)), false), "older news");
    assertTrue(table.get(1).online());
    assertTrue(table.reported(from("there", 1, false, T.plusSeconds(1)), false));
    assertFalse(table.get(1).online());
  }

  @Test
  void aReportWhileASessionIsHereCountsOnlyWhenItCloses() {
    table.connected(1, List.of("x:1"), T);
    assertFalse(table.reported(from("there", 1, true, T.plusSeconds(1)), true));
    assertEquals(List.of("x:1"), table.get(1).endpoints(), "the session here wins");
    assertNull(
        table.disconnected(1, T.plusSeconds(2)),
        "it is online at the other replica: nothing to tell");
    assertEquals(from("there", 1, true, T.plusSeconds(1)).presence(), table.get(1));
  }

  @Test
  void anOfflineReportAsideOrOneClearedByReconnectingDoesNotCount() {
    table.connected(1, List.of("x:1"), T);
    table.reported(from("there", 1, false, T.plusSeconds(1)), true);
    Presence off = table.disconnected(1, T.plusSeconds(2));
    assertEquals(new Presence(false, T.plusSeconds(2), List.of("x:1"), null, null), off);

    table.connected(2, List.of("y:1"), T);
    table.reported(from("there", 2, true, T.plusSeconds(1)), true);
    table.connected(2, List.of("y:2"), T.plusSeconds(2)); // a new session here
    assertEquals(
        new Presence(false, T.plusSeconds(3), List.of("y:2"), null, null),
        table.disconnected(2, T.plusSeconds(3)));
  }
}
