package dev.trellis.system.campus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.persistence.postgres.LocalPostgres;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisServerProcess;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Metrics;
import dev.trellis.system.netns.Ping;
import dev.trellis.system.netns.Tools;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The reference campus as one cluster: three building hosts on the server network, each running
 * {@code trellis server} (control + relay, region building-a/b/c), one PostgreSQL journal on a
 * fourth host, and campus robots (UDP blocked) homed on different buildings' relays, pinging each
 * other across buildings.
 *
 * <ol>
 *   <li>{@code kill -9} building A's server: the pair it relayed resumes (the gap is measured and
 *       reported), no node, address or key is lost, a new robot still joins;
 *   <li>A is started again: it rejoins the cluster and a robot homed on it is served by its relay
 *       again;
 *   <li>building C is cut off from everything (iptables on the router): the robot homed there moves
 *       to another building's relay and its pings resume; the other two members remove C.
 * </ol>
 *
 * Needs root (network namespaces) and PostgreSQL; skipped visibly otherwise.
 */
@Timeout(value = 900, unit = TimeUnit.SECONDS)
class CampusClusterTest {
  private static final String[] ADDRESS = {
    CampusTestbed.SERVER_ADDRESS, "198.18.10.3", "198.18.10.4"
  };
  private static final String[] REGION = {"building-a", "building-b", "building-c"};
  private static final String DB_ADDRESS = "198.18.10.9";
  private static final int CLUSTER_PORT = 25520;
  private static final Duration WAIT = Duration.ofSeconds(120);

  /** The issue's goal for a robot joining through a surviving building after a kill -9. */
  private static final Duration JOIN_GOAL = Duration.ofSeconds(10);

  /** {@code ping -D}: "[1732512345.123456] 64 bytes from ...: icmp_seq=12 ...". */
  private static final Pattern REPLY =
      Pattern.compile("^\\[(\\d+\\.\\d+)\\] \\d+ bytes from .*icmp_seq=(\\d+)", Pattern.MULTILINE);

  @Test
  void threeBuildingsKeepRobotsConnectedThroughTheLossOfOne() throws Exception {
    CampusTestbed.run(this::run);
  }

  private static String config(int building, String jdbcUrl) {
    StringBuilder seeds = new StringBuilder();
    for (String a : ADDRESS) {
      seeds
          .append(seeds.isEmpty() ? "" : ", ")
          .append('"')
          .append(a)
          .append(':')
          .append(CLUSTER_PORT)
          .append('"');
    }
    return """
                trellis.server-url = "http://%1$s:%2$d"
                trellis.journal = postgres
                trellis.postgres { url = "%3$s", user = "%4$s" }
                trellis.cluster { host = "%1$s", port = %5$d, seed-nodes = [%6$s], split-brain-resolver.stable-after = 5s }
                trellis.relay { region = "%7$s", url = "http://%1$s:%2$d" }
                """
        .formatted(
            ADDRESS[building],
            CampusTestbed.SERVER_PORT,
            jdbcUrl,
            LocalPostgres.USER,
            CLUSTER_PORT,
            seeds,
            REGION[building]);
  }

  private void run(CampusTestbed campus) throws Exception {
    TrellisServerProcess[] host = {
      campus.server(),
      campus.newServerHost("sb", ADDRESS[1]),
      campus.newServerHost("sc", ADDRESS[2])
    };
    TrellisServerProcess dbHost = campus.newServerHost("db", DB_ADDRESS);
    try (LocalPostgres postgres =
        LocalPostgres.start(
            List.of(Tools.ip(), "netns", "exec", dbHost.namespace().name()), DB_ADDRESS)) {
      String jdbc = postgres.createDatabase("campus");
      String[] hostConfig = new String[3];
      for (int i = 0; i < 3; i++) {
        hostConfig[i] = config(i, jdbc);
        host[i].start(hostConfig[i]);
      }
      awaitUpMembers(host[1], 3);
      String key = host[0].userWithReusableKey("lab");

      // Building "A" below is the one holding the auth keys (sharding decides where), so that a
      // join during its loss has to do without the registry it needs first.
      int a = registryHolder(host[1], "authkeys");
      int[] order = {a, (a + 1) % 3, (a + 2) % 3};
      TrellisServerProcess[] building = new TrellisServerProcess[3];
      String[] config = new String[3];
      String[] region = new String[3];
      for (int i = 0; i < 3; i++) {
        building[i] = host[order[i]];
        config[i] = hostConfig[order[i]];
        region[i] = REGION[order[i]];
      }
      JsonNode placement = via(building[1]).path("entities");

      // Four robots on campus networks, each homed (pinned) on a building's relay and logged in
      // there.
      TrellisAgentProcess a1 = robot(campus, "a1", "robot-a1", 0, building, region, key);
      TrellisAgentProcess b1 = robot(campus, "b1", "robot-b1", 1, building, region, key);
      TrellisAgentProcess c1 = robot(campus, "c1", "robot-c1", 2, building, region, key);
      TrellisAgentProcess b2 = robot(campus, "b2", "robot-b2", 1, building, region, key);
      awaitPing(a1, b1);
      awaitPing(c1, b2);
      JsonNode relays = relays(building[1]);
      for (String r : REGION) {
        assertTrue(
            connectedNodes(relays, r) >= 1,
            "every building's relay holds a robot: " + relays.toPrettyString());
      }
      Set<String> nodesBefore = nodes(building[1]);
      assertEquals(4, nodesBefore.size(), nodesBefore.toString());
      // A robot that joins during the loss: its agent is running, `up` comes right after the kill.
      TrellisAgentProcess n1 = campus.newCampusAgent("n1", "robot-n1");
      n1.start();

      // 1. kill -9 building A while a1 <-> b1 (through A and B) and c1 <-> b2 (through C and B)
      // ping, and robot-n1 joins through B.
      HostProcess pingAB = continuousPing(a1, b1, 40);
      HostProcess pingCB = continuousPing(c1, b2, 40);
      Await.until(
          "both pairs answering",
          WAIT,
          () -> replies(pingAB).size() > 30 && replies(pingCB).size() > 30);
      double killedAt = System.currentTimeMillis() / 1000.0;
      building[0].process().kill();
      String joined = n1.up(building[1].url(), key);
      double joinSeconds = System.currentTimeMillis() / 1000.0 - killedAt;
      pingAB.await(Duration.ofSeconds(90));
      pingCB.await(Duration.ofSeconds(90));
      double gapAB = largestGap(replies(pingAB), killedAt);
      double gapCB = largestGap(replies(pingCB), killedAt);
      Metrics.report(
          "campus cluster: kill -9 %s (holding %s): robot-n1 joined through %s %.2f s after the"
              + " kill (`trellis up` included); robot-a1<->robot-b1 (homed a/b) longest reply gap"
              + " %.2f s; robot-c1<->robot-b2 (homed c/b) %.2f s",
          region[0], held(placement, building[0]), region[1], joinSeconds, gapAB, gapCB);
      assertTrue(joined.startsWith("logged in as robot-n1"), joined);
      assertTrue(
          joinSeconds < JOIN_GOAL.toSeconds(),
          "robot-n1 joined "
              + joinSeconds
              + " s after the kill; the goal is "
              + JOIN_GOAL.toSeconds()
              + " s");
      assertTrue(
          lastReply(pingAB) > killedAt + gapAB,
          "a1 <-> b1 never resumed after the kill:\n" + pingAB.output());
      assertTrue(lastReply(pingCB) > killedAt + 1, "c1 <-> b2 stopped:\n" + pingCB.output());

      // Nothing registered is lost: the four robots and the new one, with distinct addresses.
      awaitUpMembers(building[2], 2);
      Await.until(
          "the survivors serving the node list with robot-n1",
          WAIT,
          () -> nodes(building[1]).containsAll(nodesBefore) && nodes(building[1]).size() == 5);
      assertEquals(5, addresses(nodes(building[2])), "distinct addresses: " + nodes(building[2]));
      awaitPing(n1, a1);
      assertEquals(
          5,
          building[1].users().get(0).path("nodeCount").asInt(),
          "the user owns every node, robot-n1 included");

      // 2. A comes back: it rejoins, and a robot homed on it is served by its relay again.
      building[0].start(config[0]);
      awaitUpMembers(building[1], 3);
      TrellisAgentProcess n2 = robot(campus, "n2", "robot-n2", 0, building, region, key);
      awaitPing(n2, c1);
      Await.until(
          "building-a's relay holding robot-n2 again",
          WAIT,
          () -> connectedNodes(relays(building[1]), region[0]) >= 1);
      assertEquals(
          6, nodes(building[0]).size(), "building-a serves the whole node list after rejoining");

      // 3. Cut building C off: c1, homed there, moves to another building's relay; A and B remove
      // C.
      HostProcess pingCut = continuousPing(c1, b2, 60);
      Await.until("c1 <-> b2 answering", WAIT, () -> replies(pingCut).size() > 20);
      double cutAt = System.currentTimeMillis() / 1000.0;
      campus.isolate(building[2], true);
      pingCut.await(Duration.ofSeconds(120));
      double gapCut = largestGap(replies(pingCut), cutAt);
      Metrics.report(
          "campus cluster: %s cut off: robot-c1 (homed c) <-> robot-b2 longest reply gap %.2f s",
          region[2], gapCut);
      assertTrue(
          lastReply(pingCut) > cutAt + gapCut,
          "c1 <-> b2 never resumed after the cut:\n" + pingCut.output());
      awaitUpMembers(building[1], 2);
      for (JsonNode m : members(building[1])) {
        assertFalse(
            m.path("address").asText().contains("@" + building[2].address() + ":"),
            "building-c is still a member: " + m);
      }
      campus.isolate(building[2], false);
    }
  }

  /** The index of the host whose member holds the {@code kind} registry. */
  private static int registryHolder(TrellisServerProcess via, String kind) {
    JsonNode where = via(via).path("entities").path(kind);
    for (int i = 0; i < ADDRESS.length; i++) {
      for (var e : where.properties()) {
        if (e.getKey().contains("@" + ADDRESS[i] + ":") && e.getValue().asInt() > 0) {
          return i;
        }
      }
    }
    throw new AssertionError("no member holds the " + kind + " registry: " + where);
  }

  /** The registries a building's member holds, from a {@code cluster status} placement. */
  private static List<String> held(JsonNode placement, TrellisServerProcess building) {
    List<String> kinds = new ArrayList<>();
    for (var kind : placement.properties()) {
      if (kind.getKey().equals("node")) continue;
      for (var e : kind.getValue().properties()) {
        if (e.getKey().contains("@" + building.address() + ":") && e.getValue().asInt() > 0) {
          kinds.add(kind.getKey());
        }
      }
    }
    return kinds;
  }

  private static JsonNode via(TrellisServerProcess server) {
    return server.json("cluster", "status");
  }

  /** How many distinct IPv4 and IPv6 address pairs the node list has. */
  private static int addresses(Set<String> nodes) {
    Set<String> pairs = new TreeSet<>();
    for (String n : nodes) {
      String[] f = n.split(" ");
      pairs.add(f[1] + " " + f[2]);
    }
    return pairs.size();
  }

  /** A campus robot homed on {@code home}'s relay, logged in through that building. */
  private static TrellisAgentProcess robot(
      CampusTestbed campus,
      String suffix,
      String hostname,
      int home,
      TrellisServerProcess[] building,
      String[] region,
      String key) {
    TrellisAgentProcess a = campus.newCampusAgent(suffix, hostname);
    a.start(Map.of("TRELLIS_HOME_RELAY", region[home]));
    a.up(building[home].url(), key);
    return a;
  }

  private static void awaitPing(TrellisAgentProcess from, TrellisAgentProcess to) {
    Await.until(
        from.hostname() + " pinging " + to.hostname(),
        WAIT,
        () -> Ping.ping(from.namespace(), to.overlay(), 2, 1, null, "0.2").received() > 0);
  }

  /** Pings every 100 ms for {@code seconds}, with each reply's arrival time. */
  private static HostProcess continuousPing(
      TrellisAgentProcess from, TrellisAgentProcess to, int seconds) {
    return from.namespace()
        .start(
            "ping-" + from.hostname() + "-" + to.hostname(),
            Map.of(),
            Tools.require("ping"),
            "-D",
            "-n",
            "-i",
            "0.1",
            "-W",
            "1",
            "-w",
            Integer.toString(seconds),
            to.overlay());
  }

  /** Arrival times (epoch seconds) of the replies so far. */
  private static List<Double> replies(HostProcess ping) {
    List<Double> times = new ArrayList<>();
    Matcher m = REPLY.matcher(ping.output());
    while (m.find()) {
      times.add(Double.parseDouble(m.group(1)));
    }
    return times;
  }

  private static double lastReply(HostProcess ping) {
    List<Double> r = replies(ping);
    return r.isEmpty() ? 0 : r.getLast();
  }

  /**
   * The longest time between two consecutive replies, counting from the last reply before {@code
   * from}.
   */
  private static double largestGap(List<Double> replies, double from) {
    double gap = 0;
    for (int i = 1; i < replies.size(); i++) {
      if (replies.get(i) >= from) {
        gap = Math.max(gap, replies.get(i) - replies.get(i - 1));
      }
    }
    return gap;
  }

  private static JsonNode members(TrellisServerProcess via) {
    return via(via).path("members");
  }

  private static void awaitUpMembers(TrellisServerProcess via, int n) {
    Await.until(
        n + " Up members seen from " + via.address(),
        WAIT,
        () -> {
          JsonNode members = members(via);
          int up = 0;
          for (JsonNode m : members) {
            up += "Up".equals(m.path("status").asText()) && m.path("reachable").asBoolean() ? 1 : 0;
          }
          return up == n && members.size() == n;
        });
  }

  private static JsonNode relays(TrellisServerProcess via) {
    return via.json("relays", "list");
  }

  private static int connectedNodes(JsonNode relays, String region) {
    int n = 0;
    for (JsonNode r : relays) {
      if (region.equals(r.path("region").asText())) {
        n += r.path("connectedNodes").asInt();
      }
    }
    return n;
  }

  /** Every registered node as "hostname ipv4 ipv6 nodeKey". */
  private static Set<String> nodes(TrellisServerProcess via) {
    Set<String> out = new TreeSet<>();
    for (JsonNode n : via.json("nodes", "list")) {
      out.add(
          n.path("hostname").asText()
              + " "
              + n.path("ipv4").asText()
              + " "
              + n.path("ipv6").asText()
              + " "
              + n.path("nodeKey").asText());
    }
    return out;
  }
}
