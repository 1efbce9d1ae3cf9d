package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.proto.control.ControlMessage.RelayInfo;
import dev.trellis.proto.wireguard.Curve25519;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** How a node picks among the relays of its home region. */
class RelayChoiceTest {
  private static final List<RelayInfo> REGION =
      List.of(
          new RelayInfo("a", "http://10.0.0.1:8080", null, null, true),
          new RelayInfo("a", "http://10.0.0.2:8080", null, null, true),
          new RelayInfo("a", "http://10.0.0.3:8080", null, null, true));

  @Test
  void takesTheRelayHoldingFewestNodes() {
    Map<String, Integer> loads =
        Map.of("http://10.0.0.1:8080", 7, "http://10.0.0.2:8080", 3, "http://10.0.0.3:8080", 5);
    for (int i = 0; i < 20; i++) {
      assertEquals(
          "http://10.0.0.2:8080",
          HomeRelayPolicy.leastLoaded(
                  REGION, loads, Curve25519.publicKey(Curve25519.generatePrivateKey()))
              .url());
    }
  }

  @Test
  void aRelayThatDidNotSayItsLoadComesLast() {
    Map<String, Integer> loads = Map.of("http://10.0.0.1:8080", 40, "http://10.0.0.3:8080", 41);
    assertEquals(
        "http://10.0.0.1:8080",
        HomeRelayPolicy.leastLoaded(
                REGION, loads, Curve25519.publicKey(Curve25519.generatePrivateKey()))
            .url());
  }

  /**
   * Robots enrolled one after another: each sees the others' choices, so the relays stay within one
   * node of each other.
   */
  @Test
  void nodesAddedOneByOneStayEven() {
    Map<String, Integer> loads = new HashMap<>();
    REGION.forEach(r -> loads.put(r.url(), 0));
    for (int i = 0; i < 100; i++) {
      RelayInfo pick =
          HomeRelayPolicy.leastLoaded(
              REGION, loads, Curve25519.publicKey(Curve25519.generatePrivateKey()));
      loads.merge(pick.url(), 1, Integer::sum);
    }
    int max = loads.values().stream().mapToInt(Integer::intValue).max().orElseThrow();
    int min = loads.values().stream().mapToInt(Integer::intValue).min().orElseThrow();
    assertTrue(max - min <= 1, loads.toString());
  }

  /** Robots that all start at once see equal loads: the hash of node and relay spreads them. */
  @Test
  void nodesArrivingTogetherSpreadByHash() {
    Map<String, Integer> picks = new HashMap<>();
    Map<String, Integer> allZero = new HashMap<>();
    REGION.forEach(r -> allZero.put(r.url(), 0));
    for (int i = 0; i < 300; i++) {
      picks.merge(
          HomeRelayPolicy.leastLoaded(
                  REGION, allZero, Curve25519.publicKey(Curve25519.generatePrivateKey()))
              .url(),
          1,
          Integer::sum);
    }
    assertEquals(3, picks.size(), picks.toString());
    // Expected 100 each; 60 is more than five standard deviations below.
    picks.values().forEach(n -> assertTrue(n > 60, picks.toString()));
  }
}
