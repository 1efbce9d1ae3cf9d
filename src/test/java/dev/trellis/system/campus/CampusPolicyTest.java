package dev.trellis.system.campus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.system.harness.Prometheus;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisServerProcess;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Metrics;
import dev.trellis.system.netns.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The access policy on the reference campus, set and checked through the CLI only: two robot teams
 * and an admin laptop spread over the lab (direct UDP paths) and the campus (relay paths).
 *
 * <ul>
 *   <li>same-team traffic flows on both paths; the other team is not in a robot's map and cannot be
 *       reached either way;
 *   <li>the admin reaches team A on every port and team B only on port 22, directly and through the
 *       relay; a robot cannot open a connection to the admin while replies to the admin's flow;
 *   <li>a policy failing its own tests and a malformed one are refused, the old one kept;
 *   <li>a live change opens a path within seconds; the policy survives a server restart.
 * </ul>
 *
 * Connections are real TCP connects and UDP round trips from Python's socket module inside the
 * namespaces. Needs root; skipped visibly otherwise.
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class CampusPolicyTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final int[] TCP_PORTS = {22, 80, 8080};
  private static final int UDP_PORT = 5353;

  /** Accepts on the TCP ports (answers "ok") and echoes UDP, on every address. */
  private static final String LISTENER =
      """
      import socket, sys, threading
      def tcp(port):
          s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
          s.bind(("0.0.0.0", port)); s.listen(64)
          while True:
              c, _ = s.accept(); c.sendall(b"ok"); c.close()
      for p in sys.argv[2:]:
          threading.Thread(target=tcp, args=(int(p),), daemon=True).start()
      u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", int(sys.argv[1])))
      print("listening", flush=True)
      while True:
          d, a = u.recvfrom(2048); u.sendto(d, a)
      """;

  /** Exit 0 when a TCP connection to HOST PORT opens and answers within 2 s. */
  private static final String TCP_PROBE =
      """
      import socket, sys
      s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
      assert s.recv(2) == b"ok"
      """;

  /** Exit 0 when a UDP datagram to HOST PORT comes back within 2 s. */
  private static final String UDP_PROBE =
      """
      import socket, sys
      u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
      u.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
      assert u.recvfrom(64)[0] == b"ping"
      """;

  private static final String POLICY =
      """
      // Two robot teams; the admins see team A fully and team B on ssh.
      {
        "groups": {"group:admins": ["admin@"]},
        "tagOwners": {"tag:team-a": ["robots@"], "tag:team-b": ["robots@"]},
        "acls": [
          {"action": "accept", "src": ["tag:team-a"], "dst": ["tag:team-a:*"]},
          {"action": "accept", "src": ["tag:team-b"], "dst": ["tag:team-b:*"]},
          {"action": "accept", "src": ["group:admins"], "dst": ["tag:team-a:*", "tag:team-b:22"]},
        ],
        "tests": [
          {"src": "admin@", "accept": ["tag:team-a:80", "tag:team-b:22"], "deny": ["tag:team-b:80"]},
          {"src": "tag:team-b", "deny": ["tag:team-a:22", "admin@:22"]},
        ],
      }
      """;

  /** Version 2: team B may also reach team A's port 8080 (and its own test says so). */
  private static final String POLICY_WITH_8080 =
      POLICY
          .replace(
              "\"dst\": [\"tag:team-b:*\"]},",
              "\"dst\": [\"tag:team-b:*\"]},\n"
                  + "    {\"action\": \"accept\", \"src\": [\"tag:team-b\"], \"dst\":"
                  + " [\"tag:team-a:8080\"], \"proto\": \"tcp\"},")
          .replace(
              "{\"src\": \"tag:team-b\", \"deny\"",
              "{\"src\": \"tag:team-b\", \"accept\": [\"tag:team-a:8080\"], \"deny\"");

  @Test
  void teamsAreIsolatedOnEveryPathAndTheAdminSeesWhatThePolicySays() throws Exception {
    CampusTestbed.run(this::run);
  }

  private void run(CampusTestbed campus) throws Exception {
    TrellisServerProcess server = campus.server();
    // Quality points every 15 s (reports at most every 5 s), so the history fills within the test.
    server.start("trellis.quality.resolution = 15s");
    server.admin("users", "create", "robots").orThrow();
    server.admin("users", "create", "admin").orThrow();
    Path dir = Files.createTempDirectory("trellis-policy");
    Path v1 = write(dir, "lab.hujson", POLICY);
    // The policy first, so the keys' tags are checked against its tagOwners.
    assertTrue(
        server.admin("policy", "set", v1.toString()).orThrow().stdout().contains("version 1"));
    String teamA = key(server, "robots", "tag:team-a");
    String teamB = key(server, "robots", "tag:team-b");
    String admin = key(server, "admin", null);
    assertFalse(
        server.admin("authkeys", "create", "--user", "admin", "--tag", "tag:team-a").ok(),
        "admin@ does not own tag:team-a");

    TrellisAgentProcess a1 = campus.newLabAgent("pa1", "a1");
    TrellisAgentProcess a2 = campus.newLabAgent("pa2", "a2");
    TrellisAgentProcess a3 = campus.newCampusAgent("pa3", "a3");
    TrellisAgentProcess b1 = campus.newLabAgent("pb1", "b1");
    TrellisAgentProcess b2 = campus.newCampusAgent("pb2", "b2");
    TrellisAgentProcess laptop = campus.newLabAgent("pl", "laptop");
    Map<TrellisAgentProcess, List<String>> keys =
        Map.of(
            a1,
            List.of(teamA),
            a2,
            List.of(teamA),
            a3,
            List.of(teamA),
            b1,
            List.of(teamB),
            b2,
            List.of(teamB),
            laptop,
            List.of(admin));
    CampusTestbed.startAll(server.url(), keys, Map.of("TRELLIS_QUALITY_REPORT_SECONDS", "5"));
    keys.keySet().forEach(CampusPolicyTest::listen);

    // Maps: a robot never learns the other team; the admin sees both.
    awaitPeers(a1, List.of(a2, a3, laptop), List.of(b1, b2));
    awaitPeers(b1, List.of(b2, laptop), List.of(a1, a2, a3));
    awaitPeers(laptop, List.of(a1, a2, a3, b1, b2), List.of());
    Await.until("a1 <-> a2 direct", WAIT, () -> "direct".equals(a1.pathTo(a2)));

    // Same team, both paths (a1-a2 direct in the lab, a1-a3 through the relay), TCP and UDP.
    awaitTcp(a1, a2, 80);
    awaitTcp(a2, a1, 22);
    awaitTcp(a1, a3, 8080);
    awaitTcp(a3, a1, 80);
    assertTrue(udp(a1, a2), "UDP a1 -> a2");
    assertTrue(udp(a3, a1), "UDP a3 -> a1 (relay)");
    awaitTcp(b2, b1, 80);
    // Across teams: nothing, either way, on either path.
    assertFalse(tcp(a1, b1, 22), "a1 -> b1 (lab)");
    assertFalse(tcp(b1, a1, 22), "b1 -> a1 (lab)");
    assertFalse(tcp(a3, b2, 22), "a3 -> b2 (campus)");
    assertFalse(udp(b2, a3), "UDP b2 -> a3");

    // The admin: team A on every port, team B on 22 only, on the direct and the relay path.
    long droppedBefore = dropped(b1);
    for (int port : TCP_PORTS) awaitTcp(laptop, a1, port);
    awaitTcp(laptop, a3, 8080);
    awaitTcp(laptop, b1, 22);
    awaitTcp(laptop, b2, 22);
    assertFalse(tcp(laptop, b1, 80), "laptop -> b1:80 (lab, direct)");
    assertFalse(tcp(laptop, b2, 8080), "laptop -> b2:8080 (campus, relay)");
    assertFalse(udp(laptop, b1), "UDP laptop -> b1");
    assertTrue(dropped(b1) > droppedBefore, "b1 counted the packets it dropped");
    checkMetrics(server, a1, a3, b1);
    // Robots cannot open connections to the admin, though the replies above came back.
    assertFalse(tcp(b1, laptop, 22), "b1 -> laptop (lab)");
    assertFalse(tcp(a3, laptop, 22), "a3 -> laptop (campus)");

    // Refused policies leave the one in force.
    Path failing =
        write(
            dir,
            "failing.hujson",
            POLICY.replace("\"deny\": [\"tag:team-b:80\"]", "\"deny\": [\"tag:team-b:22\"]"));
    CommandResult refused = server.admin("policy", "set", failing.toString());
    assertEquals(1, refused.exitCode(), refused.toString());
    assertTrue(refused.stderr().contains("test 1 fails"), refused.stderr());
    Path malformed =
        write(
            dir, "malformed.hujson", "{\n  \"acls\": [\n    {\"action\": \"accept\",, }\n  ]\n}\n");
    CommandResult broken = server.admin("policy", "set", malformed.toString());
    assertEquals(1, broken.exitCode(), broken.toString());
    assertTrue(broken.stderr().contains("line 3"), broken.stderr());
    assertEquals(POLICY, server.admin("policy", "get").orThrow().stdout());
    assertTrue(
        server
            .admin("policy", "why", "laptop", "b1:22")
            .orThrow()
            .stdout()
            .startsWith("allowed: laptop -> b1:22/tcp by acls[2]"));

    // A live change opens b -> a:8080 within seconds, on both paths.
    Path v2 = write(dir, "lab-8080.hujson", POLICY_WITH_8080);
    long setAt = System.nanoTime();
    assertTrue(
        server.admin("policy", "set", v2.toString()).orThrow().stdout().contains("version 2"));
    awaitTcp(b1, a1, 8080);
    double opened = (System.nanoTime() - setAt) / 1e9;
    awaitTcp(b2, a3, 8080);
    assertFalse(tcp(b1, a1, 22), "only 8080 opened");
    Metrics.report(
        "policy: b1 -> a1:8080 connected %.2f s after `trellis policy set` returned (CLI, 6 nodes)",
        opened);

    // The policy outlives the server.
    server.stop(Duration.ofSeconds(20));
    server.start();
    assertEquals(POLICY_WITH_8080, server.admin("policy", "get").orThrow().stdout());
    Await.until("a1 back in session", WAIT, () -> a1.statusNow().path("connected").asBoolean());
    awaitTcp(b1, a1, 8080);
    awaitTcp(laptop, b2, 22);
    assertFalse(tcp(laptop, b2, 80), "still enforced after the restart");
  }

  private static Path write(Path dir, String name, String text) throws Exception {
    return Files.writeString(dir.resolve(name), text);
  }

  private static String key(TrellisServerProcess server, String user, String tag) {
    return tag == null
        ? server.createReusableAuthKey(user)
        : server.createReusableAuthKey(user, tag);
  }

  private static HostProcess listen(TrellisAgentProcess host) {
    String[] argv = new String[4 + TCP_PORTS.length];
    argv[0] = Tools.require("python3");
    argv[1] = "-c";
    argv[2] = LISTENER;
    argv[3] = Integer.toString(UDP_PORT);
    for (int i = 0; i < TCP_PORTS.length; i++) argv[4 + i] = Integer.toString(TCP_PORTS[i]);
    HostProcess p = host.namespace().start("listener-" + host.hostname(), Map.of(), argv);
    p.awaitReady("listener on " + host.hostname(), WAIT, () -> p.output().contains("listening"));
    return p;
  }

  private static boolean tcp(TrellisAgentProcess from, TrellisAgentProcess to, int port) {
    return probe(from, TCP_PROBE, to, port);
  }

  private static boolean udp(TrellisAgentProcess from, TrellisAgentProcess to) {
    return probe(from, UDP_PROBE, to, UDP_PORT);
  }

  /** Runs a Python probe in {@code from}'s namespace against {@code to}'s overlay address. */
  private static boolean probe(
      TrellisAgentProcess from, String script, TrellisAgentProcess to, int port) {
    return from.namespace()
        .run(
            Map.of(),
            Duration.ofSeconds(10),
            Tools.require("python3"),
            "-c",
            script,
            to.overlay(),
            Integer.toString(port))
        .ok();
  }

  private static void awaitTcp(TrellisAgentProcess from, TrellisAgentProcess to, int port) {
    Await.until(
        from.hostname() + " -> " + to.hostname() + ":" + port, WAIT, () -> tcp(from, to, port));
  }

  private static void awaitPeers(
      TrellisAgentProcess node, List<TrellisAgentProcess> seen, List<TrellisAgentProcess> hidden) {
    Await.until(
        node.hostname() + " seeing exactly its allowed peers",
        WAIT,
        () -> {
          for (TrellisAgentProcess p : seen) {
            if (node.peer(p.hostname()) == null) return false;
          }
          return true;
        });
    for (TrellisAgentProcess p : hidden) {
      assertNull(node.peer(p.hostname()), node.hostname() + " must not learn " + p.hostname());
    }
    assertNotNull(node.statusNow());
  }

  /** Packets the node's filter dropped, from `trellis status --json`. */
  /**
   * The metrics on this testbed, where a relay carries traffic and a policy drops it: the node's
   * policy drops as `trellis metrics` prints them, the relay's counters against a relayed ping of
   * known size, promtool's verdict on both expositions, and a real Prometheus scraping the server.
   */
  private static void checkMetrics(
      TrellisServerProcess server,
      TrellisAgentProcess a1,
      TrellisAgentProcess a3,
      TrellisAgentProcess b1)
      throws Exception {
    // b1's policy drops: what the metrics say lies between two status readings around them.
    long statusBefore = dropped(b1);
    String nodeMetrics = b1.metrics();
    long statusAfter = dropped(b1);
    double policyDrops =
        Prometheus.sample(nodeMetrics, "trellis_node_dropped_packets_total{reason=\"policy\"}")
            .orElseThrow(() -> new AssertionError("no policy drops in:\n" + nodeMetrics));
    assertTrue(
        policyDrops >= statusBefore && policyDrops <= statusAfter,
        policyDrops
            + " policy drops in the metrics, "
            + statusBefore
            + ".."
            + statusAfter
            + " in the status");
    assertTrue(
        Prometheus.sample(
                    nodeMetrics,
                    "trellis_peer_path_info{path=\"relay\",peer=\"b2\",relay=\"default\"}")
                .orElse(0)
            == 1,
        "b1 reaches b2 (campus) through the relay:\n" + nodeMetrics);
    CommandResult lint = Prometheus.check(nodeMetrics);
    assertTrue(lint.ok(), "promtool on the node's metrics: " + lint.stdout() + lint.stderr());

    // The relay counts what it carries: 20 pings of 1,000 bytes a3 -> a1 and back.
    String metricsUrl = "http://127.0.0.1:9090/metrics";
    Await.until(
        "a3 -> a1 relayed",
        WAIT,
        () -> "relay".equals(a3.pathTo(a1)) || "relay".equals(a1.pathTo(a3)));
    String before = Prometheus.fetch(server.namespace(), metricsUrl);
    a3.namespace()
        .exec(
            Tools.require("ping"), "-c", "20", "-i", "0.05", "-s", "1000", "-W", "2", a1.overlay());
    String after = Prometheus.fetch(server.namespace(), metricsUrl);
    double packets =
        Prometheus.sample(after, "trellis_relay_forwarded_packets_total").orElseThrow()
            - Prometheus.sample(before, "trellis_relay_forwarded_packets_total").orElseThrow();
    double bytes =
        Prometheus.sample(after, "trellis_relay_forwarded_bytes_total").orElseThrow()
            - Prometheus.sample(before, "trellis_relay_forwarded_bytes_total").orElseThrow();
    // Each ping and reply is a 1,028-byte IP packet, sealed into 32 bytes more.
    assertTrue(packets >= 40, packets + " packets relayed for 40 pings and replies");
    assertTrue(bytes >= 40 * (1028 + 32), bytes + " bytes relayed for 40 x 1,060");
    assertTrue(Prometheus.sample(after, "trellis_relay_connections").orElseThrow() >= 2);
    CommandResult serverLint = Prometheus.check(after);
    assertTrue(
        serverLint.ok(),
        "promtool on the server's metrics: " + serverLint.stdout() + serverLint.stderr());

    // Network quality: a3 measures its relayed path to a1, reports it, and the server keeps it.
    Await.until(
        "a3 measured its relayed path to a1",
        WAIT,
        () -> {
          JsonNode peer = a3.peer("a1");
          return "relay".equals(peer.path("path").asText())
              && peer.path("rttMs").asDouble() > 0
              && peer.path("jitterMs").isNumber()
              && peer.path("loss").isNumber();
        });
    long a3Id = server.node("a3").path("id").asLong();
    long a1Id = server.node("a1").path("id").asLong();
    Await.until(
        "the server keeps a3's report of a1",
        WAIT,
        () -> {
          for (JsonNode pair : server.json("quality", "list")) {
            if (pair.path("from").asLong() == a3Id
                && pair.path("to").asLong() == a1Id
                && "relay".equals(pair.path("path").asText())
                && pair.path("rttMs").asDouble() > 0) {
              return true;
            }
          }
          return false;
        });
    JsonNode points = server.json("quality", "history", Long.toString(a3Id), Long.toString(a1Id));
    assertTrue(points.size() >= 1, "a3 -> a1 history: " + points);
    assertEquals("relay", points.get(0).path("path").asText());

    // A real Prometheus scrapes the server and sees the relay's traffic.
    Prometheus.Server prometheus = Prometheus.start(server.namespace(), "127.0.0.1:9090", 9091);
    try {
      Await.until(
          "Prometheus scraped the server",
          WAIT,
          () -> prometheus.query("up{job=\"trellis\"}").orElse(0) == 1);
      Await.until(
          "Prometheus has the relay's packets",
          WAIT,
          () ->
              prometheus.query("trellis_relay_forwarded_packets_total").orElse(0)
                  >= Prometheus.sample(after, "trellis_relay_forwarded_packets_total")
                      .orElseThrow());
    } finally {
      prometheus.process().stop();
    }
  }

  private static long dropped(TrellisAgentProcess node) {
    JsonNode filter = node.status().path("filter");
    return filter.path("dropped").asLong();
  }
}
