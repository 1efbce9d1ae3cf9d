package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.trellis.proto.control.ControlMessage.RelayInfo;
import dev.trellis.proto.wireguard.Curve25519;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The home-relay choice as a pure function of a probe report: pin, fastest, hysteresis, a dead
 * relay, load.
 */
class HomeRelayPolicyTest {
  private static final byte[] NODE = Curve25519.publicKey(Curve25519.generatePrivateKey());
  private static final RelayInfo A = new RelayInfo("a", "http://198.51.100.1:8080", null, null);
  private static final RelayInfo B = new RelayInfo("b", "http://198.51.100.2:8080", null, null);
  private static final RelayInfo B2 = new RelayInfo("b", "http://198.51.100.3:8080", null, null);
  private static final List<RelayInfo> MAP = List.of(A, B, B2);

  /** A report: relay → millis (null: unreachable); loads by URL. */
  private static RelayProbe.Report report(
      Map<RelayInfo, Double> millis, Map<String, Integer> loads) {
    List<RelayProbe.RelayResult> results = new ArrayList<>();
    for (RelayInfo r : MAP) {
      Double m = millis.get(r);
      results.add(
          new RelayProbe.RelayResult(r, m, m == null ? "unreachable" : null, loads.get(r.url())));
    }
    return new RelayProbe.Report(results);
  }

  @Test
  void withoutAHomeTheFastestRegionWins() {
    var choice =
        HomeRelayPolicy.decide(
            MAP, null, null, report(Map.of(A, 5.0, B, 2.0, B2, 3.0), Map.of()), null, NODE);
    assertEquals("b", choice.region());
  }

  @Test
  void theHomeMovesOnlyToAClearlyFasterRegion() {
    // b at 4.0 is faster than a at 5.0, but not below 0.7 × 5.0: stay.
    assertNull(
        HomeRelayPolicy.decide(
            MAP, "a", A, report(Map.of(A, 5.0, B, 4.0, B2, 4.0), Map.of()), null, NODE));
    // 3.0 < 3.5: move.
    assertEquals(
        "b",
        HomeRelayPolicy.decide(
                MAP, "a", A, report(Map.of(A, 5.0, B, 3.0, B2, 3.0), Map.of()), null, NODE)
            .region());
  }

  @Test
  void aPinnedRegionWinsWhileReachable() {
    var report = report(Map.of(A, 9.0, B, 1.0, B2, 1.0), Map.of());
    assertEquals("a", HomeRelayPolicy.decide(MAP, null, null, report, "a", NODE).region());
    assertNull(HomeRelayPolicy.decide(MAP, "a", A, report, "a", NODE), "already home at the pin");
    // The pinned region unreachable: the fastest one.
    assertEquals(
        "b",
        HomeRelayPolicy.decide(
                MAP, null, null, report(Map.of(B, 1.0, B2, 1.0), Map.of()), "a", NODE)
            .region());
  }

  @Test
  void aDeadRelayInTheHomeRegionGivesWayToAnotherOfItsRelays() {
    // Home in b on B, which stopped answering; B2 in the same region still does.
    var choice =
        HomeRelayPolicy.decide(MAP, "b", B, report(Map.of(A, 9.0, B2, 1.0), Map.of()), null, NODE);
    assertEquals("b", choice.region());
    assertEquals(B2, choice.relay());
  }

  @Test
  void withinARegionTheLeastLoadedReachableRelay() {
    var choice =
        HomeRelayPolicy.choose(
            "b", MAP, report(Map.of(B, 1.0, B2, 1.0), Map.of(B.url(), 7, B2.url(), 2)), NODE);
    assertEquals(B2, choice.relay());
    // The less loaded one does not answer: the reachable one.
    choice =
        HomeRelayPolicy.choose(
            "b", MAP, report(Map.of(B, 1.0), Map.of(B.url(), 7, B2.url(), 2)), NODE);
    assertEquals(B, choice.relay());
  }

  @Test
  void nothingAnsweredTriesTheFirstRegionOnlyWithoutAHome() {
    var none = report(Map.of(), Map.of());
    assertEquals("a", HomeRelayPolicy.decide(MAP, null, null, none, null, NODE).region());
    assertNull(HomeRelayPolicy.decide(MAP, "b", B, none, null, NODE));
  }
}
