package dev.trellis.system.campus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.system.campus.CampusTestbed.Zone;
import dev.trellis.system.harness.FailureDump;
import dev.trellis.system.harness.RosEnv;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisPing;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Iperf;
import dev.trellis.system.netns.Metrics;
import dev.trellis.system.netns.Netns;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Ping;
import dev.trellis.system.netns.Tools;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Trellis on the reference campus ({@link CampusTestbed}): two lab hosts (UDP among them and to the
 * server) and two campus hosts, each alone on its NATed campus network where only TCP to the
 * server's port 8080 gets out. Checks the path each pair ends up on (direct in the lab, relayed
 * otherwise), traffic over it, a host moving between campus and lab under a ping loop, and that the
 * relay only ever carries ciphertext. Needs root; skipped visibly otherwise. Figures are printed
 * with the {@link Metrics} prefix.
 */
@ExtendWith(FailureDump.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class CampusEndToEndTest {
  private static final Duration ONLINE_TIMEOUT = Duration.ofSeconds(60);
  private static final Duration DIRECT_TIMEOUT = Duration.ofSeconds(30);

  /** The brief: back on the relay within 5 s of direct probes going unanswered. */
  private static final Duration FALLBACK_BOUND = Duration.ofSeconds(5);

  private static final Pattern SEQ = Pattern.compile("bytes from .*icmp_seq=(\\d+)");

  /** "TRLL": the marker the ciphertext test looks for. */
  private static final String MARKER_HEX = "54524c4c";

  private static CampusTestbed campus;
  private static TrellisAgentProcess lab1;
  private static TrellisAgentProcess lab2;
  private static TrellisAgentProcess campus1;
  private static TrellisAgentProcess campus2;
  private final List<HostProcess> testProcesses = new ArrayList<>();

  @BeforeAll
  @Timeout(value = 300, unit = TimeUnit.SECONDS)
  static void startCampus() {
    campus = CampusTestbed.create();
    campus.server().start();
    String key = campus.server().userWithReusableKey("campus");
    lab1 = campus.newLabAgent("l1", "lab-1");
    lab2 = campus.newLabAgent("l2", "lab-2");
    campus1 = campus.newCampusAgent("c1", "campus-1");
    campus2 = campus.newCampusAgent("c2", "campus-2");
    List<TrellisAgentProcess> all = List.of(lab1, lab2, campus1, campus2);
    Map<TrellisAgentProcess, List<String>> login = new LinkedHashMap<>();
    all.forEach(a -> login.put(a, List.of(key)));
    CampusTestbed.startAll(campus.server().url(), login);
  }

  @AfterAll
  static void tearDown() {
    if (campus != null) {
      campus.close();
      campus = null;
    }
  }

  @BeforeEach
  void everyoneOnline() {
    List<TrellisAgentProcess> all = List.of(lab1, lab2, campus1, campus2);
    for (TrellisAgentProcess a : all) {
      for (TrellisAgentProcess b : all) {
        if (a != b) {
          Await.until(
              a.hostname() + " seeing " + b.hostname() + " online",
              ONLINE_TIMEOUT,
              () -> {
                JsonNode p = a.peer(b.hostname());
                return p != null && p.path("online").asBoolean();
              });
        }
      }
    }
  }

  @AfterEach
  void stopTestProcesses() {
    testProcesses.forEach(HostProcess::stop);
    testProcesses.clear();
  }

  // ---------------------------------------------------------------------------------------------------

  @Test
  @Order(1)
  void labToLabGoesDirect() {
    long t0 = System.nanoTime();
    awaitPath(lab1, lab2, "direct", DIRECT_TIMEOUT);
    awaitPath(lab2, lab1, "direct", DIRECT_TIMEOUT);
    Metrics.report("campus lab<->lab: direct path after %d ms (from the test's start)", ms(t0));
    JsonNode peer = lab1.peer(lab2.hostname());
    assertTrue(
        peer.path("endpoint").asText().startsWith(lab2.address() + ":"),
        "direct endpoint should be lab-2's own address (no NAT in the lab): " + peer);
    assertTrue(
        peer.path("relay").isNull() || peer.path("relay").isMissingNode(),
        "relay should be null on a direct path: " + peer);
    String via = trellisPingVia(lab1, lab2);
    assertTrue(
        via.startsWith(lab2.address() + ":"),
        "trellis ping should go via lab-2's address, got: " + via);
    measure("lab<->lab (direct)", lab1, lab2);
  }

  @Test
  @Order(2)
  void labToCampusIsRelayed() {
    checkRelayed(lab1, campus1, "lab<->campus (relay)");
  }

  @Test
  @Order(3)
  void campusToCampusIsRelayed() {
    checkRelayed(campus1, campus2, "campus<->campus (relay)");
  }

  @Test
  @Order(4)
  @Timeout(value = 240, unit = TimeUnit.SECONDS)
  void movingFromCampusToLabUpgradesAndMovingBackFallsBack() {
    TrellisAgentProcess mover = campus2;
    TrellisAgentProcess peer = lab1;
    awaitPath(peer, mover, "relay", Duration.ofSeconds(15));
    try {
      // Up: campus -> lab while a 10 Hz ping loop runs from the lab host to the mover.
      PingLoop up = PingLoop.start(peer.namespace(), mover.overlay(), 120, testProcesses);
      Await.sleep(Duration.ofSeconds(2));
      long t0 = System.nanoTime();
      campus.moveTo(mover, Zone.LAB);
      awaitPath(peer, mover, "direct", DIRECT_TIMEOUT);
      long peerDirectMs = ms(t0);
      awaitPath(mover, peer, "direct", DIRECT_TIMEOUT);
      long bothDirectMs = ms(t0);
      PingLoop.Result upResult = up.finish();
      Metrics.report(
          "campus move campus->lab: %s sees direct after %d ms, both after %d ms; ping loop %s",
          peer.hostname(), peerDirectMs, bothDirectMs, upResult);
      assertTrue(
          upResult.lossPercent() <= 5.0, "upgrade to direct should not break traffic: " + upResult);
      String via = trellisPingVia(peer, mover);
      assertTrue(
          via.startsWith(mover.address() + ":"),
          "after the move trellis ping should go direct to " + mover.address() + ", got: " + via);
      Ping.Result direct = Ping.ping(peer.namespace(), mover.overlay(), 10, 2, null, "0.2");
      Metrics.report(
          "campus moved node direct RTT avg %.3f ms (loss %.0f%%)",
          direct.rttAvgMs(), direct.lossPercent());

      // Back: lab -> campus; direct probes go unanswered, the pair must fall back to the relay.
      PingLoop down = PingLoop.start(peer.namespace(), mover.overlay(), 150, testProcesses);
      Await.sleep(Duration.ofSeconds(2));
      long t1 = System.nanoTime();
      campus.moveTo(mover, Zone.CAMPUS);
      awaitPath(peer, mover, "relay", Duration.ofSeconds(20));
      long peerRelayMs = ms(t1);
      awaitPath(mover, peer, "relay", Duration.ofSeconds(20));
      long bothRelayMs = ms(t1);
      PingLoop.Result downResult = down.finish();
      Metrics.report(
          "campus move lab->campus: %s back on relay after %d ms, both after %d ms; ping loop %s",
          peer.hostname(), peerRelayMs, bothRelayMs, downResult);
      assertTrue(
          peerRelayMs <= FALLBACK_BOUND.toMillis() && bothRelayMs <= FALLBACK_BOUND.toMillis(),
          "fallback to the relay took "
              + peerRelayMs
              + " / "
              + bothRelayMs
              + " ms (bound "
              + FALLBACK_BOUND.toMillis()
              + " ms)");
      assertTrue(
          downResult.tailAnswered(20),
          "pings after the fallback should be answered again: " + downResult);
      assertEquals(
          "relay",
          trellisPingVia(peer, mover).startsWith("relay") ? "relay" : trellisPingVia(peer, mover));
    } finally {
      campus.moveTo(mover, Zone.CAMPUS);
    }
  }

  @Test
  @Order(5)
  void relaySeesOnlyCiphertext() throws IOException {
    TrellisAgentProcess src = campus1;
    TrellisAgentProcess dst = campus2;
    awaitPath(src, dst, "relay", Duration.ofSeconds(15));
    awaitPath(dst, src, "relay", Duration.ofSeconds(15));
    Path serverPcap = campus.bed().workDir().resolve("server-eth0.pcap");
    Path overlayPcap = campus.bed().workDir().resolve("dst-overlay.pcap");
    HostProcess serverDump = tcpdump(campus.server().namespace(), "eth0", serverPcap);
    HostProcess overlayDump = tcpdump(dst.namespace(), dst.interfaceName(), overlayPcap);
    CommandResult ping =
        src.namespace()
            .run(
                Map.of(),
                Duration.ofSeconds(30),
                "ping",
                "-n",
                "-c",
                "10",
                "-i",
                "0.2",
                "-W",
                "2",
                "-s",
                "200",
                "-p",
                MARKER_HEX,
                dst.overlay());
    Ping.Result result = Ping.parse(ping);
    assertTrue(
        result.allReplied(),
        "marker pings over the relay should all be answered:\n" + ping.stdout() + ping.stderr());
    Await.sleep(Duration.ofMillis(500));
    serverDump.terminate(Duration.ofSeconds(5));
    overlayDump.terminate(Duration.ofSeconds(5));
    byte[] serverBytes = Files.readAllBytes(serverPcap);
    byte[] overlayBytes = Files.readAllBytes(overlayPcap);
    byte[] marker = "TRLLTRLLTRLL".getBytes(StandardCharsets.US_ASCII);
    int serverPackets = pcapPackets(serverBytes);
    int overlayPackets = pcapPackets(overlayBytes);
    int overlayHits = count(overlayBytes, marker);
    int serverHits = count(serverBytes, marker);
    Metrics.report(
        "campus ciphertext: server eth0 capture %d packets / %d bytes, marker hits %d; destination %s capture %d packets, marker hits %d",
        serverPackets,
        serverBytes.length,
        serverHits,
        dst.interfaceName(),
        overlayPackets,
        overlayHits);
    assertTrue(
        overlayHits >= 10,
        "the marker should be visible in plaintext on the destination's Trellis interface");
    // 10 requests + 10 replies, each in and out of the relay, as TCP data segments: the relay did
    // carry them.
    assertTrue(
        serverPackets >= 40,
        "the server capture should hold the relayed traffic, got " + serverPackets + " packets");
    assertEquals(0, serverHits, "the marker must never appear in the server-side (relay) capture");
    assertEquals("relay", src.pathTo(dst), "the marker pings should have crossed the relay");
  }

  @Test
  @Order(6)
  void ros1TopicCrossesTheRelayedOverlay() {
    TrellisAgentProcess master = campus1;
    TrellisAgentProcess subscriber = campus2;
    awaitPath(master, subscriber, "relay", Duration.ofSeconds(15));
    String roscore = requireTool("roscore", "ros-core");
    String rostopic = requireTool("rostopic", "python3-rostopic");
    String masterUri = "http://" + master.overlay() + ":11311";
    Path rosHome = campus.bed().workDir().resolve("ros");
    Map<String, String> masterEnv = rosEnv(masterUri, master.overlay(), rosHome.resolve("master"));
    Map<String, String> subscriberEnv =
        rosEnv(masterUri, subscriber.overlay(), rosHome.resolve("subscriber"));
    HostProcess core = master.namespace().start("roscore", masterEnv, roscore, "-p", "11311");
    testProcesses.add(core);
    core.awaitReady(
        "roscore started on " + masterUri,
        Duration.ofSeconds(60),
        () -> core.output().contains("started core service"));
    String payload = "TRLL-ros-" + Netns.random(6);
    HostProcess pub =
        master
            .namespace()
            .start(
                "rostopic-pub",
                masterEnv,
                rostopic,
                "pub",
                "-r",
                "5",
                "/trellis_chatter",
                "std_msgs/String",
                "data: '" + payload + "'");
    testProcesses.add(pub);
    long t0 = System.nanoTime();
    CommandResult echo =
        subscriber
            .namespace()
            .run(
                subscriberEnv,
                Duration.ofSeconds(90),
                rostopic,
                "echo",
                "-n",
                "3",
                "/trellis_chatter");
    long echoMs = ms(t0);
    int received =
        count(
            echo.stdout().getBytes(StandardCharsets.UTF_8),
            payload.getBytes(StandardCharsets.UTF_8));
    Metrics.report(
        "campus ROS 1: rostopic echo on %s got %d messages from %s's publisher in %d ms (master %s, relayed overlay)",
        subscriber.hostname(), received, master.hostname(), echoMs, masterUri);
    assertTrue(
        echo.ok() && received == 3,
        "rostopic echo over the overlay should get 3 messages (exit "
            + echo.exitCode()
            + "):\n"
            + echo.stdout()
            + echo.stderr()
            + "\npublisher:\n"
            + pub.output());
    assertEquals(
        "relay", subscriber.pathTo(master), "the ROS traffic should have crossed the relay");
  }

  private static Map<String, String> rosEnv(String masterUri, String ownAddress, Path home) {
    return RosEnv.of(masterUri, "ROS_IP", ownAddress, home);
  }

  private static String requireTool(String name, String debianPackage) {
    String found = Tools.find(name);
    if (found == null) {
      throw new AssertionError(
          name
              + " is missing: apt-get install "
              + debianPackage
              + " (ros-core python3-rospy python3-rostopic python3-std-msgs); CI's .ci/run installs them");
    }
    return found;
  }

  // ---------------------------------------------------------------------------------------------------

  private void checkRelayed(TrellisAgentProcess a, TrellisAgentProcess b, String label) {
    // Give path discovery its chance (it upgrades within ~1-3 s when it can): the path must stay
    // relayed.
    Await.sleep(Duration.ofSeconds(4));
    awaitPath(a, b, "relay", Duration.ofSeconds(10));
    awaitPath(b, a, "relay", Duration.ofSeconds(10));
    JsonNode peer = a.peer(b.hostname());
    assertFalse(
        peer.path("relay").isNull() || peer.path("relay").isMissingNode(),
        "a relayed peer names its relay region: " + peer);
    String via = trellisPingVia(a, b);
    assertTrue(via.startsWith("relay"), "trellis ping should go via the relay, got: " + via);
    measure(label, a, b);
    assertEquals("relay", a.pathTo(b), "still relayed after the traffic");
  }

  /** Ping RTT and a 3 s iperf3 TCP transfer from a to b's overlay address; prints the figures. */
  private void measure(String label, TrellisAgentProcess a, TrellisAgentProcess b) {
    Ping.Result ping = Ping.ping(a.namespace(), b.overlay(), 10, 2, null, "0.2");
    assertTrue(
        ping.allReplied(),
        label + ": ping over the overlay failed:\n" + ping.raw().stdout() + ping.raw().stderr());
    Iperf.Result iperf = Iperf.tcp(b.namespace(), a.namespace(), b.overlay(), 3, false);
    assertTrue(iperf.bytesReceived() > 0, label + ": iperf3 moved no data");
    Metrics.report(
        "campus %s: RTT avg %.3f ms, iperf3 TCP 3 s %.1f Mbit/s (retransmits %d)",
        label, ping.rttAvgMs(), iperf.mbps(), iperf.retransmits());
  }

  /** "relay default" or "IP:PORT" from the last pong of {@code trellis ping -c 3}. */
  private static String trellisPingVia(TrellisAgentProcess from, TrellisAgentProcess to) {
    TrellisPing ping = from.ping(to.hostname(), 3);
    assertTrue(ping.answered(), "trellis ping " + to.hostname() + " failed: " + ping);
    return ping.last().via();
  }

  private static void awaitPath(
      TrellisAgentProcess from, TrellisAgentProcess to, String path, Duration timeout) {
    Await.until(
        from.hostname() + "'s path to " + to.hostname() + " being " + path,
        timeout,
        () -> path.equals(from.pathTo(to)));
  }

  private HostProcess tcpdump(NetworkNamespace ns, String iface, Path file) {
    HostProcess p =
        ns.start(
            "tcpdump-" + iface,
            Map.of(),
            Tools.require("tcpdump"),
            "-n",
            "-U",
            "-i",
            iface,
            "-w",
            file.toString());
    testProcesses.add(p);
    p.awaitReady(
        "tcpdump listening on " + iface,
        Duration.ofSeconds(10),
        () -> p.output().contains("listening on"));
    return p;
  }

  /** Records in a classic pcap file. */
  static int pcapPackets(byte[] pcap) {
    if (pcap.length < 24) {
      return 0;
    }
    ByteBuffer buf = ByteBuffer.wrap(pcap);
    int magic = buf.order(ByteOrder.LITTLE_ENDIAN).getInt(0);
    buf.order(
        magic == 0xa1b2c3d4 || magic == 0xa1b23c4d
            ? ByteOrder.LITTLE_ENDIAN
            : ByteOrder.BIG_ENDIAN);
    int pos = 24;
    int n = 0;
    while (pos + 16 <= pcap.length) {
      int incl = buf.getInt(pos + 8);
      if (incl < 0 || pos + 16 + incl > pcap.length) {
        break;
      }
      pos += 16 + incl;
      n++;
    }
    return n;
  }

  static int count(byte[] haystack, byte[] needle) {
    int hits = 0;
    outer:
    for (int i = 0; i + needle.length <= haystack.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (haystack[i + j] != needle[j]) {
          continue outer;
        }
      }
      hits++;
      i += needle.length - 1;
    }
    return hits;
  }

  private static long ms(long t0) {
    return (System.nanoTime() - t0) / 1_000_000;
  }

  /** A background {@code ping -i 0.1 -c N}: loss and the longest run of unanswered echoes. */
  record PingLoop(HostProcess process, int count) {
    static final double INTERVAL_S = 0.1;

    static PingLoop start(NetworkNamespace ns, String dest, int count, List<HostProcess> owned) {
      HostProcess p =
          ns.start(
              "ping-loop",
              Map.of(),
              Tools.require("ping"),
              "-n",
              "-i",
              Double.toString(INTERVAL_S),
              "-W",
              "1",
              "-c",
              Integer.toString(count),
              dest);
      owned.add(p);
      return new PingLoop(p, count);
    }

    Result finish() {
      if (process.waitFor(Duration.ofSeconds((long) (count * INTERVAL_S) + 30)).isEmpty()) {
        process.stop();
        throw new AssertionError("ping loop did not finish:\n" + process.output());
      }
      BitSet answered = new BitSet();
      Matcher m = SEQ.matcher(process.output());
      while (m.find()) {
        answered.set(Integer.parseInt(m.group(1)));
      }
      int longest = 0;
      int run = 0;
      for (int seq = 1; seq <= count; seq++) {
        run = answered.get(seq) ? 0 : run + 1;
        longest = Math.max(longest, run);
      }
      return new Result(count, answered.cardinality(), longest, answered);
    }

    record Result(int sent, int received, int longestGap, BitSet answered) {
      double lossPercent() {
        return 100.0 * (sent - received) / sent;
      }

      boolean tailAnswered(int n) {
        for (int seq = sent - n + 1; seq <= sent; seq++) {
          if (!answered.get(seq)) {
            return false;
          }
        }
        return true;
      }

      @Override
      public String toString() {
        return String.format(
            Locale.ROOT,
            "%d/%d answered (loss %.1f%%), longest gap %d echoes = %.1f s",
            received,
            sent,
            lossPercent(),
            longestGap,
            longestGap * INTERVAL_S);
      }
    }
  }
}
