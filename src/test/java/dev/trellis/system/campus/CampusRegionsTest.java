package dev.trellis.system.campus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisPing;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.Metrics;
import dev.trellis.system.netns.Ping;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Two relay regions on the campus testbed: the server's embedded relay ("main") and a {@code
 * trellis relay} on a second server-network host ("b"), advertised through {@code
 * trellis.relay.others}. Two campus hosts (UDP blocked) homed on different regions ({@code
 * TRELLIS_HOME_RELAY}) reach each other, each sending through the other's home; netcheck lists both
 * regions and the home. Needs root; skipped visibly otherwise.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class CampusRegionsTest {
  private static final String RELAY_B_ADDRESS = "198.18.10.3";

  @Test
  void campusHostsHomedInDifferentRegionsTalkThroughEachOthersHome() throws Exception {
    CampusTestbed.run(this::run);
  }

  private void run(CampusTestbed campus) {
    campus
        .server()
        .start(
            """
                trellis.relay.region = "main"
                trellis.relay.others = [ { region = "b", url = "http://%s:%d" } ]
                """
                .formatted(RELAY_B_ADDRESS, CampusTestbed.SERVER_PORT));
    String key = campus.server().userWithReusableKey("campus");
    String apiKey = campus.server().createApiKey();
    campus.startStandaloneRelay("rb", RELAY_B_ADDRESS, "b", apiKey);

    TrellisAgentProcess a = campus.newCampusAgent("ra", "campus-a");
    TrellisAgentProcess b = campus.newCampusAgent("rb2", "campus-b");
    a.start(Map.of("TRELLIS_HOME_RELAY", "main"));
    b.start(Map.of("TRELLIS_HOME_RELAY", "b"));
    a.up(campus.server().url(), key);
    b.up(campus.server().url(), key);

    // Each learns the other's home from the map and sends through it.
    Await.until(
        "campus-a sending to campus-b through region b",
        Duration.ofSeconds(60),
        () -> {
          JsonNode p = a.peer("campus-b");
          return p != null
              && "relay".equals(p.path("path").asText())
              && "b".equals(p.path("relay").asText());
        });
    Await.until(
        "campus-b sending to campus-a through region main",
        Duration.ofSeconds(60),
        () -> {
          JsonNode p = b.peer("campus-a");
          return p != null
              && "relay".equals(p.path("path").asText())
              && "main".equals(p.path("relay").asText());
        });
    // The first handshake may be sent while the connections are still being set up; WireGuard
    // retries it.
    Await.until(
        "a ping across the regions",
        Duration.ofSeconds(30),
        () -> Ping.ping(a.namespace(), b.overlay(), 2, 1, null, "0.2").received() > 0);
    Ping.Result ping = Ping.ping(a.namespace(), b.overlay(), 10, 2, null, "0.2");
    assertTrue(
        ping.allReplied(),
        "ping across regions failed:\n" + ping.raw().stdout() + ping.raw().stderr());
    Metrics.report(
        "campus two regions (a homed main, b homed b): RTT avg %.3f ms", ping.rttAvgMs());

    TrellisPing trellisPing = a.ping("campus-b", 3);
    assertTrue(trellisPing.answered(), "trellis ping failed: " + trellisPing);
    assertEquals("relay b", trellisPing.first().via(), trellisPing.raw().stdout());

    // netcheck: no UDP on campus, both regions measured, the home marked.
    CommandResult netcheck = a.trellis("netcheck", "--state-dir", a.stateDir().toString());
    String out = netcheck.orThrow().stdout();
    assertTrue(out.contains("UDP: no"), out);
    List<String> lines = out.lines().toList();
    assertTrue(
        lines.stream()
            .anyMatch(l -> l.startsWith("relay main (") && l.matches(".*: [\\d.]+ ms\\s+<- home")),
        out);
    assertTrue(
        lines.stream()
            .anyMatch(
                l ->
                    l.startsWith("relay b (http://" + RELAY_B_ADDRESS)
                        && l.matches(".*: [\\d.]+ ms")),
        out);
  }
}
