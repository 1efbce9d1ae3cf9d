package dev.trellis.system.campus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.system.harness.RosEnv;
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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Names on the reference campus, through the host's own resolver ({@code getent}, glibc): each host
 * has its own {@code /etc/netns/NS/resolv.conf} pointing at the campus's name server (dnsmasq from
 * Debian on the server network). Peers resolve short and fully qualified, v4 and v6, and back; a
 * campus name still resolves; a rename and a delete are followed; {@code trellis down} puts the
 * file back byte for byte, and an agent killed with {@code kill -9} is cleaned up by the next one.
 * Needs root and dnsmasq; skipped visibly otherwise.
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class CampusNamesTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final String UPSTREAM = "198.18.10.53";
  private static final byte[] ORIGINAL =
      "# the campus resolver\nnameserver 198.18.10.53\nsearch campus.example\n".getBytes();

  @Test
  void peersResolveByNameThroughTheHostsResolver() throws Exception {
    String dnsmasq = Tools.require("dnsmasq");
    CampusTestbed.run(campus -> run(campus, dnsmasq));
  }

  private void run(CampusTestbed campus, String dnsmasq) throws Exception {
    TrellisServerProcess server = campus.server();
    // The campus's own name server, on the server network.
    TrellisServerProcess dnsHost = campus.newServerHost("dns", UPSTREAM);
    HostProcess dns =
        dnsHost
            .namespace()
            .start(
                "dnsmasq",
                Map.of(),
                dnsmasq,
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--log-facility=-",
                "--listen-address=" + UPSTREAM,
                "--bind-interfaces",
                "--address=/www.campus.example/198.18.10.80");
    Await.until("dnsmasq up", WAIT, () -> dns.output().contains("started"));
    server.start(
        """
        trellis.dns {
          enabled = true
          base-domain = "lab.internal"
          extra-records = [ { name = "rosmaster", type = "CNAME", value = "robot-1.lab.internal" } ]
        }
        """);
    String key = server.userWithReusableKey("lab");
    TrellisAgentProcess r1 = campus.newLabAgent("n1", "robot-1");
    TrellisAgentProcess r2 = campus.newCampusAgent("n2", "robot-2");
    List<Path> etc = new ArrayList<>();
    try {
      for (TrellisAgentProcess a : List.of(r1, r2)) {
        Path dir = Path.of("/etc/netns", a.namespace().name());
        Files.createDirectories(dir);
        Files.write(dir.resolve("resolv.conf"), ORIGINAL);
        etc.add(dir);
        a.start();
        a.up(server.url(), key);
      }
      String r2v4 = r2.overlay();
      // Short and fully qualified, v4 and v6, forward and back; the alias; a campus name.
      Await.until(
          "robot-1 resolving robot-2", WAIT, () -> first(r1, "ahostsv4", "robot-2").equals(r2v4));
      assertEquals(r2v4, first(r1, "ahostsv4", "robot-2.lab.internal"));
      assertTrue(first(r1, "ahostsv6", "robot-2").startsWith("fd7a:115c:a1e0:"), "v6");
      assertTrue(getent(r1, "hosts", r2v4).stdout().contains("robot-2.lab.internal"), "reverse");
      assertEquals(r1.overlay(), first(r2, "ahostsv4", "rosmaster"));
      assertEquals("198.18.10.80", first(r1, "ahostsv4", "www.campus.example"), "split DNS");
      assertEquals("198.18.10.80", first(r1, "ahostsv4", "www"), "the campus search domain");
      assertFalse(getent(r1, "ahostsv4", "robot-9").ok(), "no such peer");
      // Ping by name, through the resolver, across the relay.
      Await.until(
          "ping robot-2",
          WAIT,
          () -> r1.namespace().run(Tools.require("ping"), "-c", "1", "-W", "2", "robot-2").ok());

      // ROS 1 by names only, across the relay: master and subscriber on robot-1, publisher on
      // robot-2, ROS_HOSTNAME and ROS_MASTER_URI names, no ROS_IP.
      ros(r1, r2, campus.bed().workDir().resolve("ros"));

      // A rename is followed.
      long id = server.node("robot-2").path("id").asLong();
      server.admin("nodes", "rename", Long.toString(id), "arm-2").orThrow();
      long renamed = System.nanoTime();
      Await.until("robot-1 resolving arm-2", WAIT, () -> getent(r1, "ahostsv4", "arm-2").ok());
      Metrics.report(
          "names: arm-2 resolved on robot-1 %.2f s after `trellis nodes rename` returned"
              + " (getent polled, each a process start)",
          (System.nanoTime() - renamed) / 1e9);
      Await.until("robot-2 gone", WAIT, () -> !getent(r1, "ahostsv4", "robot-2").ok());

      // down restores the file byte for byte.
      r1.trellis("down", "--state-dir", r1.stateDir().toString()).orThrow();
      assertArrayEquals(ORIGINAL, Files.readAllBytes(etc.get(0).resolve("resolv.conf")));

      // A killed agent leaves its file behind; the next one starts from the original (restores it,
      // resumes, points the host at itself again), so down still gives back the original.
      Path r2conf = etc.get(1).resolve("resolv.conf");
      assertFalse(
          Arrays.equals(ORIGINAL, Files.readAllBytes(r2conf)), "robot-2's resolver in place");
      r2.process().kill();
      r2.start();
      Await.until("robot-2 back up", WAIT, () -> r2.statusNow().path("connected").asBoolean());
      Await.until(
          "robot-2 resolving robot-1 again",
          WAIT,
          () -> first(r2, "ahostsv4", "robot-1").equals(r1.overlay()));
      r2.trellis("down", "--state-dir", r2.stateDir().toString()).orThrow();
      assertArrayEquals(ORIGINAL, Files.readAllBytes(r2conf));
    } finally {
      for (Path dir : etc) deleteTree(dir);
    }
  }

  private static void ros(TrellisAgentProcess r1, TrellisAgentProcess r2, Path home) {
    String roscore = Tools.require("roscore");
    String rostopic = Tools.require("rostopic");
    String master = "http://robot-1:11311";
    Map<String, String> env1 = rosEnv(master, "robot-1", home.resolve("robot-1"));
    Map<String, String> env2 = rosEnv(master, "robot-2", home.resolve("robot-2"));
    HostProcess core = r1.namespace().start("roscore", env1, roscore, "-p", "11311");
    HostProcess pub = null;
    try {
      core.awaitReady(
          "roscore on robot-1", WAIT, () -> core.output().contains("started core service"));
      pub =
          r2.namespace()
              .start(
                  "rostopic-pub",
                  env2,
                  rostopic,
                  "pub",
                  "-r",
                  "5",
                  "/named_chatter",
                  "std_msgs/String",
                  "data: 'by-name'");
      CommandResult echo =
          r1.namespace()
              .run(env1, Duration.ofSeconds(90), rostopic, "echo", "-n", "3", "/named_chatter");
      long received = echo.stdout().lines().filter(l -> l.contains("by-name")).count();
      assertTrue(
          echo.ok() && received == 3,
          "rostopic echo by names should get 3 messages:\n"
              + echo.stdout()
              + echo.stderr()
              + "\npublisher:\n"
              + pub.output());
    } finally {
      if (pub != null) pub.stop();
      core.stop();
    }
  }

  private static Map<String, String> rosEnv(String master, String hostname, Path home) {
    return RosEnv.of(master, "ROS_HOSTNAME", hostname, home);
  }

  private static CommandResult getent(TrellisAgentProcess on, String db, String name) {
    return on.namespace().run(Map.of(), Duration.ofSeconds(15), Tools.require("getent"), db, name);
  }

  /** The first address getent gives, or "" when it fails. */
  private static String first(TrellisAgentProcess on, String db, String name) {
    CommandResult r = getent(on, db, name);
    if (!r.ok() || r.stdout().isBlank()) return "";
    return r.stdout().strip().lines().findFirst().orElse("").split("\\s+")[0];
  }

  private static void deleteTree(Path dir) {
    try (Stream<Path> walk = Files.walk(dir)) {
      walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (Exception e) {
      // best effort
    }
  }
}
