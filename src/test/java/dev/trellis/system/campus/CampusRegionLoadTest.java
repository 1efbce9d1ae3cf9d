package dev.trellis.system.campus;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.persistence.postgres.LocalPostgres;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisServerProcess;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.Ping;
import dev.trellis.system.netns.Tools;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Two servers of one cluster in the same building (region "lab"), robots enrolled one after another
 * without a pinned home: each takes the relay holding fewer nodes, so they end up two and two. Then
 * one server is killed: its robots move to the other relay of the region and still reach everyone.
 * Needs root and PostgreSQL.
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class CampusRegionLoadTest {
  private static final String[] ADDRESS = {CampusTestbed.SERVER_ADDRESS, "198.18.10.3"};
  private static final String DB_ADDRESS = "198.18.10.9";
  private static final Duration WAIT = Duration.ofSeconds(120);

  @Test
  void robotsSpreadOverARegionsRelaysAndMoveOffOneThatLeaves() throws Exception {
    CampusTestbed.run(this::run);
  }

  private void run(CampusTestbed campus) throws Exception {
    TrellisServerProcess[] server = {campus.server(), campus.newServerHost("s2", ADDRESS[1])};
    TrellisServerProcess dbHost = campus.newServerHost("db", DB_ADDRESS);
    try (LocalPostgres postgres =
        LocalPostgres.start(
            List.of(Tools.ip(), "netns", "exec", dbHost.namespace().name()), DB_ADDRESS)) {
      String jdbc = postgres.createDatabase("lab");
      String seeds = "\"" + ADDRESS[0] + ":25520\", \"" + ADDRESS[1] + ":25520\"";
      for (int i = 0; i < 2; i++) {
        server[i].start(
            """
                        trellis.server-url = "http://%1$s:%2$d"
                        trellis.journal = postgres
                        trellis.postgres { url = "%3$s", user = "%4$s" }
                        trellis.cluster { host = "%1$s", port = 25520, seed-nodes = [%5$s], split-brain-resolver.stable-after = 5s }
                        # With two members, the one that stays must be allowed to go on alone.
                        trellis.cluster.split-brain-resolver.active-strategy = keep-oldest
                        pekko.cluster.split-brain-resolver.keep-oldest.down-if-alone = off
                        trellis.relay { region = "lab", url = "http://%1$s:%2$d" }
                        """
                .formatted(ADDRESS[i], CampusTestbed.SERVER_PORT, jdbc, LocalPostgres.USER, seeds));
      }
      Await.until("both relays in the map", WAIT, () -> relays(server[0]).size() == 2);
      String key = server[0].userWithReusableKey("lab");

      List<TrellisAgentProcess> robots = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        TrellisAgentProcess robot = campus.newCampusAgent("r" + i, "robot-" + i);
        robot.start();
        robot.up(server[i % 2].url(), key);
        robots.add(robot);
        int expected = i + 1;
        Await.value(
            "robot-" + i + " on a relay",
            WAIT,
            () -> relays(server[0]),
            load -> total(load) == expected);
      }
      Map<String, Integer> load = relays(server[0]);
      assertEquals(
          Map.of(relayUrl(0), 2, relayUrl(1), 2),
          load,
          "robots enrolled one by one spread evenly over the region's relays");
      awaitPing(robots.get(0), robots.get(1));
      awaitPing(robots.get(2), robots.get(3));

      // The second server dies (oldest stays): its robots move to the first, the only relay left in
      // "lab".
      server[1].process().kill();
      Await.value(
          "all four robots on the remaining relay",
          WAIT,
          () -> relays(server[0]),
          now -> now.getOrDefault(relayUrl(0), 0) == 4);
      for (int i = 0; i < 4; i++) {
        awaitPing(robots.get(i), robots.get((i + 1) % 4));
      }
    }
  }

  private static String relayUrl(int server) {
    return "http://" + ADDRESS[server] + ":" + CampusTestbed.SERVER_PORT;
  }

  private static void awaitPing(TrellisAgentProcess from, TrellisAgentProcess to) {
    Await.until(
        from.hostname() + " pinging " + to.hostname(),
        WAIT,
        () -> Ping.ping(from.namespace(), to.overlay(), 2, 1, null, "0.2").received() > 0);
  }

  /** Relay URL → connected nodes, from {@code trellis relays list --json}. */
  private static Map<String, Integer> relays(TrellisServerProcess via) {
    Map<String, Integer> out = new TreeMap<>();
    for (JsonNode r : via.json("relays", "list")) {
      out.put(r.path("url").asText(), r.path("connectedNodes").asInt());
    }
    return out;
  }

  private static int total(Map<String, Integer> relays) {
    return relays.values().stream().mapToInt(Integer::intValue).sum();
  }
}
