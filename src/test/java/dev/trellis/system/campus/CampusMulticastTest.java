package dev.trellis.system.campus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisServerProcess;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Metrics;
import dev.trellis.system.netns.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Multicast over the overlay on the reference campus, set up through the CLI only ({@code trellis
 * up --multicast}):
 *
 * <ul>
 *   <li>a plain UDP multicast sender on robot a1 (Python, default TTL 1, no interface chosen: the
 *       agent's multicast route takes it) reaches a2 in the same lab (direct path) and a3 in
 *       another building (relay), every datagram;
 *   <li>a4, on team A but not opted in, gets nothing; b1, on team B, opted in and visible (team B
 *       may ssh into team A) gets nothing either: its policy lets a1 send it no UDP, and its packet
 *       filter counts the refused copies;
 *   <li>ROS 2's middleware: Cyclone DDS's {@code ddsperf} (Debian's cyclonedds-tools, 0.10, the
 *       line ROS 2 Humble and Jazzy use) with its default multicast discovery, a publisher on a1
 *       and a subscriber on a3 in the other building: they discover each other and data flows; when
 *       a1's agent stops, the subscriber sees the participant leave.
 * </ul>
 *
 * Needs root, python3 and ddsperf; skipped visibly without root.
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class CampusMulticastTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final String GROUP = "239.255.42.1";
  private static final int PORT = 7420;
  private static final int COUNT = 40;

  /** Joins GROUP on the overlay address IFACE; prints the distinct datagrams it got. */
  private static final String RECEIVER =
      """
      import socket, sys
      group, port, iface, expect, quiet = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
      s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      s.bind(("", port))
      s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton(iface))
      print("joined", flush=True)
      got = set()
      s.settimeout(None)
      while len(got) < expect:
          try:
              d, _ = s.recvfrom(2048)
          except socket.timeout:
              break
          got.add(d)
          s.settimeout(quiet)
      print("received", len(got), flush=True)
      """;

  /** Sends COUNT datagrams to GROUP, 50 ms apart, with the host's defaults (TTL 1, route). */
  private static final String SENDER =
      """
      import socket, sys, time
      group, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
      s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      for i in range(count):
          s.sendto(b"datagram-%d" % i, (group, port))
          time.sleep(0.05)
      print("sent", count, flush=True)
      """;

  private static final String POLICY =
      """
      {
        "tagOwners": {"tag:team-a": ["robots@"], "tag:team-b": ["robots@"]},
        "acls": [
          {"action": "accept", "src": ["tag:team-a"], "dst": ["tag:team-a:*"]},
          // Team B may ssh into team A, so the teams see each other; team A may send team B nothing.
          {"action": "accept", "src": ["tag:team-b"], "dst": ["tag:team-a:22"], "proto": "tcp"},
        ],
      }
      """;

  @Test
  void multicastReachesWhomThePolicyAllowsAndDdsDiscoversAcrossCampus() throws Exception {
    Tools.require("python3");
    Tools.require("ddsperf");
    CampusTestbed.run(this::run);
  }

  private void run(CampusTestbed campus) throws Exception {
    TrellisServerProcess server = campus.server();
    server.start();
    server.admin("users", "create", "robots").orThrow();
    Path policy = campus.bed().workDir().resolve("teams.hujson");
    Files.writeString(policy, POLICY);
    server.admin("policy", "set", policy.toString()).orThrow();
    String teamA = server.createReusableAuthKey("robots", "tag:team-a");
    String teamB = server.createReusableAuthKey("robots", "tag:team-b");

    TrellisAgentProcess a1 = campus.newLabAgent("ma1", "a1");
    TrellisAgentProcess a2 = campus.newLabAgent("ma2", "a2");
    TrellisAgentProcess a3 = campus.newCampusAgent("ma3", "a3");
    TrellisAgentProcess a4 = campus.newLabAgent("ma4", "a4");
    TrellisAgentProcess b1 = campus.newLabAgent("mb1", "b1");
    Map<TrellisAgentProcess, List<String>> logins = new LinkedHashMap<>();
    logins.put(a1, List.of(teamA, "--multicast"));
    logins.put(a2, List.of(teamA, "--multicast"));
    logins.put(a3, List.of(teamA, "--multicast"));
    logins.put(a4, List.of(teamA));
    logins.put(b1, List.of(teamB, "--multicast"));
    CampusTestbed.startAll(server.url(), logins);

    // a1 sends to the members it sees: a2, a3 and b1 (not a4, which did not opt in).
    Await.until(
        "a1 sending multicast to a2, a3 and b1",
        WAIT,
        () -> multicast(a1).path("peers").asInt() == 3);
    assertFalse(multicast(a4).path("member").asBoolean(), "a4 did not opt in");
    assertTrue(
        a1.namespace()
            .exec(Tools.ip(), "route", "show", "224.0.0.0/4")
            .stdout()
            .contains("dev " + a1.interfaceName()),
        "a1 routes multicast through its Trellis interface");
    Await.until("a1 -> a2 direct", WAIT, () -> "direct".equals(a1.pathTo(a2)));
    Await.until("a1 -> a3 relay", WAIT, () -> "relay".equals(a1.pathTo(a3)));
    assertTrue(a1.ping("a2", 3).answered(), "a1 pings a2");
    assertTrue(a1.ping("a3", 3).answered(), "a1 pings a3");

    // Plain UDP multicast.
    Map<TrellisAgentProcess, HostProcess> receivers = new LinkedHashMap<>();
    for (TrellisAgentProcess r : List.of(a2, a3, a4, b1)) {
      HostProcess p =
          r.namespace()
              .start(
                  "receiver-" + r.hostname(),
                  Map.of(),
                  Tools.require("python3"),
                  "-c",
                  RECEIVER,
                  GROUP,
                  Integer.toString(PORT),
                  r.overlay(),
                  Integer.toString(COUNT),
                  "5");
      p.awaitReady("receiver on " + r.hostname(), WAIT, () -> p.output().contains("joined"));
      receivers.put(r, p);
    }
    long b1DroppedBefore = b1.statusNow().path("filter").path("dropped").asLong();
    a1.namespace()
        .run(
            Map.of(),
            WAIT,
            Tools.require("python3"),
            "-c",
            SENDER,
            GROUP,
            Integer.toString(PORT),
            Integer.toString(COUNT))
        .orThrow();
    // Those that get everything stop at COUNT. The others wait for a first datagram that must
    // never come: by the time b1's filter has refused every copy, a4 and b1 must have none.
    for (TrellisAgentProcess r : List.of(a2, a3)) {
      HostProcess p = receivers.get(r);
      Await.until(
          "the receiver on " + r.hostname() + " done", WAIT, () -> p.output().contains("received"));
      assertEquals(COUNT, received(p), r.hostname() + " got every datagram:\n" + p.output());
    }
    JsonNode sent = multicast(a1);
    assertEquals(COUNT, sent.path("sent").asLong(), sent.toString());
    assertEquals(3L * COUNT, sent.path("copies").asLong(), sent.toString());
    // b1 was sent its copies and refused them under its policy; a4 was sent none.
    Await.until(
        "b1's filter refusing a1's multicast",
        WAIT,
        () -> b1.statusNow().path("filter").path("dropped").asLong() - b1DroppedBefore >= COUNT);
    for (TrellisAgentProcess r : List.of(a4, b1)) {
      HostProcess p = receivers.get(r);
      assertEquals(-1, received(p), r.hostname() + " got nothing:\n" + p.output());
      p.stop();
    }
    Metrics.report(
        "multicast: a1 sent %d datagrams, %d copies; a2 (direct) and a3 (relay) got all; a4 (not"
            + " opted in) and b1 (other team) none; b1 refused %d",
        sent.path("sent").asLong(),
        sent.path("copies").asLong(),
        b1.statusNow().path("filter").path("dropped").asLong() - b1DroppedBefore);

    dds(a1, a3);
  }

  /**
   * ddsperf publisher on {@code pub}, subscriber on {@code sub} (another building, relayed), each
   * told to use its Trellis address; discovery by multicast. Then {@code pub}'s agent stops.
   */
  private static void dds(TrellisAgentProcess pub, TrellisAgentProcess sub) {
    String ddsperf = Tools.require("ddsperf");
    HostProcess subscriber =
        sub.namespace().start("ddsperf-sub", cyclone(sub), ddsperf, "-D", "300", "sub");
    long started = System.nanoTime();
    HostProcess publisher =
        pub.namespace().start("ddsperf-pub", cyclone(pub), ddsperf, "-D", "300", "pub", "20Hz");
    try {
      Pattern remote = Pattern.compile("participant [^ ]+: new\\s*$", Pattern.MULTILINE);
      Await.until(
          "the subscriber discovering the publisher",
          WAIT,
          () -> remote.matcher(subscriber.output()).find());
      double discovered = (System.nanoTime() - started) / 1e9;
      Await.until("data flowing", WAIT, () -> total(subscriber.output()) >= 20);
      long stopped = System.nanoTime();
      pub.stop();
      Await.until(
          "the subscriber noticing the publisher leave",
          WAIT,
          () -> subscriber.output().contains(": gone"));
      Metrics.report(
          "multicast: ddsperf sub on %s discovered pub on %s in %.2f s (both processes starting);"
              + " saw it leave %.1f s after its agent stopped",
          sub.hostname(), pub.hostname(), discovered, (System.nanoTime() - stopped) / 1e9);
    } finally {
      publisher.stop();
      subscriber.stop();
    }
  }

  /** Cyclone DDS on the Trellis interface only, by its address, multicast on. */
  private static Map<String, String> cyclone(TrellisAgentProcess on) {
    return Map.of(
        "CYCLONEDDS_URI",
        "<CycloneDDS><Domain><General><Interfaces><NetworkInterface address=\""
            + on.overlay()
            + "\" multicast=\"true\"/></Interfaces></General></Domain></CycloneDDS>");
  }

  /** The latest "total N" of a ddsperf subscriber's statistics, 0 before any. */
  private static long total(String output) {
    Matcher m = Pattern.compile("total (\\d+)").matcher(output);
    long last = 0;
    while (m.find()) last = Long.parseLong(m.group(1));
    return last;
  }

  /** What a receiver printed as received, -1 before it did. */
  private static int received(HostProcess receiver) {
    Matcher m = Pattern.compile("received (\\d+)").matcher(receiver.output());
    return m.find() ? Integer.parseInt(m.group(1)) : -1;
  }

  private static JsonNode multicast(TrellisAgentProcess agent) {
    return agent.statusNow().path("multicast");
  }
}
