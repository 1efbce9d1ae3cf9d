package dev.trellis.control.map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.control.map.NetworkMap.Presence;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import java.lang.reflect.RecordComponent;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * MapEncoder writes the map envelopes by hand: read them back with the protocol's own mapper and
 * compare every field with what went in.
 */
class MapEncoderTest {
  private static final Instant NOW = Instant.parse("2025-03-04T05:06:07Z");
  private static final ControlMessage.NetworkInfo NETWORK =
      new ControlMessage.NetworkInfo(
          "100.64.0.0/10",
          "fd7a:115c:a1e0::/48",
          List.of(
              new ControlMessage.RelayInfo("building-a", "https://a.example", "a2V5", 3478, true),
              new ControlMessage.RelayInfo("building-b", null, null, null, null)),
          List.of("https://a.example", "https://b.example"));

  private final NodeIndex nodes = new NodeIndex(Clock.fixed(NOW, ZoneOffset.UTC));
  private final PresenceTable presence = new PresenceTable("here");
  private final MapEncoder encoder = new MapEncoder(nodes, presence);

  /** What each node was given, to build the expected NodeInfo independently of MapEncoder.info. */
  private final Map<Long, Presence> given = new HashMap<>();

  private static NodeRecord record(
      long id,
      String ipv4,
      String ipv6,
      Set<String> tags,
      boolean ephemeral,
      Instant expiry,
      boolean expired,
      boolean loggedOut) {
    return new NodeRecord(
        id,
        "machine-" + id,
        "node-key-" + id,
        "user-" + id,
        "host-" + id,
        ipv4,
        ipv6,
        tags,
        ephemeral,
        NOW.minusSeconds(3600),
        expiry,
        expired,
        loggedOut);
  }

  private void online(long id, List<String> endpoints, String homeRelay) {
    presence.connected(id, endpoints, NOW.minusSeconds(id));
    if (homeRelay != null) {
      // A node homed on a relay takes part in multicast too, so self has every component set.
      presence.endpointsChanged(id, endpoints, homeRelay, true, NOW.minusSeconds(id));
    }
    given.put(id, presence.get(id));
  }

  private ControlMessage.NodeInfo expected(long id) {
    NodeRecord r = nodes.get(id);
    Presence p = given.get(id);
    List<String> addresses = new ArrayList<>();
    if (r.ipv4() != null) addresses.add(r.ipv4());
    if (r.ipv6() != null) addresses.add(r.ipv6());
    return new ControlMessage.NodeInfo(
        id,
        r.hostname(),
        r.user(),
        r.nodeKey(),
        addresses,
        p == null ? List.of() : p.endpoints(),
        p != null && p.online(),
        p == null ? null : p.lastSeen(),
        r.tags(),
        r.expiry(),
        r.ephemeral(),
        p == null ? null : p.homeRelay(),
        p == null ? null : p.multicast());
  }

  /**
   * Self (every field set), a peer without presence, an offline peer, and two that are not live.
   */
  private void fiveNodes() {
    nodes.put(
        record(
            1,
            "100.64.0.1",
            "fd7a:115c:a1e0::1",
            Set.of("tag:robot", "tag:arm"),
            true,
            NOW.plusSeconds(60),
            false,
            false));
    nodes.put(record(2, "100.64.0.2", null, Set.of(), false, null, false, false));
    nodes.put(record(3, null, "fd7a:115c:a1e0::3", Set.of("tag:x"), false, null, false, false));
    nodes.put(record(4, "100.64.0.4", null, Set.of(), false, NOW, false, false)); // expires now
    nodes.put(record(5, "100.64.0.5", null, Set.of(), false, null, false, true)); // logged out
    online(1, List.of("192.0.2.1:41641", "[2001:db8::1]:41641"), "building-a");
    online(3, List.of("192.0.2.3:41641"), null);
    presence.disconnected(3, NOW);
    given.put(3L, presence.get(3));
  }

  private static Map<Long, ControlMessage.NodeInfo> byId(List<ControlMessage.NodeInfo> infos) {
    Map<Long, ControlMessage.NodeInfo> m = new HashMap<>();
    infos.forEach(i -> assertNull(m.put(i.id(), i), "node " + i.id() + " twice"));
    return m;
  }

  @Test
  void fullMapReadsBackAsTheProtocolsFullMap() throws Exception {
    fiveNodes();
    var full =
        assertInstanceOf(
            ControlMessage.FullMap.class, ControlJson.decode(encoder.fullMap(1, NETWORK)));
    assertEquals(expected(1), full.self());
    assertEquals(NETWORK, full.network());
    assertEquals(
        Map.of(2L, expected(2), 3L, expected(3)), byId(full.peers()), "live peers other than self");
  }

  @Test
  void deltaForEveryoneAndForAChangedNodeItself() throws Exception {
    fiveNodes();
    var shared =
        assertInstanceOf(
            ControlMessage.MapDelta.class,
            ControlJson.decode(encoder.delta(List.of(1L, 2L, 3L), List.of(4L, 9L), -1)));
    assertNull(shared.self());
    assertEquals(List.of(expected(1), expected(2), expected(3)), shared.upserted());
    assertEquals(List.of(4L, 9L), shared.removed());

    var own =
        assertInstanceOf(
            ControlMessage.MapDelta.class,
            ControlJson.decode(encoder.delta(List.of(1L, 2L, 3L), List.of(), 2)));
    assertEquals(expected(2), own.self());
    assertEquals(List.of(expected(1), expected(3)), own.upserted());
    assertEquals(List.of(), own.removed());
  }

  @Test
  void networkUpdateReadsBack() throws Exception {
    var update =
        assertInstanceOf(
            ControlMessage.NetworkUpdate.class,
            ControlJson.decode(MapEncoder.networkUpdate(NETWORK)));
    assertEquals(NETWORK, update.network());
  }

  @Test
  void aNodesJsonIsReusedUntilInvalidated() throws Exception {
    fiveNodes();
    encoder.fullMap(1, NETWORK);
    presence.connected(2, List.of("192.0.2.2:1"), NOW);
    var cached = (ControlMessage.FullMap) ControlJson.decode(encoder.fullMap(1, NETWORK));
    assertFalse(
        byId(cached.peers()).get(2L).online(),
        "encoded once, reused until the map says it changed");
    encoder.invalidate(2);
    given.put(2L, presence.get(2));
    var fresh = (ControlMessage.FullMap) ControlJson.decode(encoder.fullMap(1, NETWORK));
    assertEquals(expected(2), byId(fresh.peers()).get(2L));
    assertTrue(byId(fresh.peers()).get(2L).online());
  }

  /**
   * A component added to NodeInfo must reach the JSON with a value: the self of a node whose every
   * field is set must carry every component, none null, false, zero or empty.
   */
  @Test
  void everyNodeInfoComponentIsInTheJson() throws Exception {
    fiveNodes();
    JsonNode json = ControlJson.MAPPER.readTree(encoder.fullMap(1, NETWORK));
    JsonNode self = json.get("self");
    ControlMessage.NodeInfo decoded =
        ((ControlMessage.FullMap) ControlJson.decode(encoder.fullMap(1, NETWORK))).self();
    ControlMessage.NodeInfo want = expected(1);
    RecordComponent[] components = ControlMessage.NodeInfo.class.getRecordComponents();
    assertTrue(components.length >= 12, "NodeInfo has lost components?");
    for (RecordComponent c : components) {
      String name = c.getName();
      JsonNode value = self.get(name);
      assertNotNull(value, "NodeInfo." + name + " is missing from MapEncoder's JSON");
      assertFalse(
          value.isNull()
              || (value.isBoolean() && !value.booleanValue())
              || (value.isNumber() && value.asLong() == 0)
              || (value.isContainerNode() && value.isEmpty()),
          "NodeInfo."
              + name
              + " is in MapEncoder's JSON only as a default ("
              + value
              + "): does MapEncoder.info set it, and does this test's node set it?");
      assertEquals(
          c.getAccessor().invoke(want), c.getAccessor().invoke(decoded), "NodeInfo." + name);
    }
    assertEquals(
        Set.of(),
        unknownFields(self, ControlMessage.NodeInfo.class),
        "fields NodeInfo does not have");
  }

  /** The hand-written envelopes carry exactly the protocol records' components, plus "type". */
  @Test
  void envelopesHaveExactlyTheProtocolsFields() throws Exception {
    fiveNodes();
    JsonNode full = ControlJson.MAPPER.readTree(encoder.fullMap(1, NETWORK));
    assertEquals("full-map", full.get("type").asText());
    assertEquals(names(ControlMessage.FullMap.class), fieldsBut(full, "type"));
    JsonNode delta = ControlJson.MAPPER.readTree(encoder.delta(List.of(1L), List.of(4L), 1));
    assertEquals("map-delta", delta.get("type").asText());
    assertEquals(names(ControlMessage.MapDelta.class), fieldsBut(delta, "type"));
  }

  private static Set<String> names(Class<? extends Record> type) {
    Set<String> names = new TreeSet<>();
    for (RecordComponent c : type.getRecordComponents()) {
      names.add(c.getName());
    }
    return names;
  }

  private static Set<String> fieldsBut(JsonNode object, String except) {
    Set<String> fields = new TreeSet<>();
    object.fieldNames().forEachRemaining(fields::add);
    fields.remove(except);
    return fields;
  }

  private static Set<String> unknownFields(JsonNode object, Class<? extends Record> type) {
    Set<String> fields = new TreeSet<>();
    object.fieldNames().forEachRemaining(fields::add);
    fields.removeAll(names(type));
    return fields;
  }
}
