package dev.trellis.system.campus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.system.harness.ResolvedHost;
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
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Names on the reference campus, through the host's own resolver ({@code getent}, glibc): each host
 * has its own {@code /etc/netns/NS/resolv.conf} pointing at the campus's name server (dnsmasq from
 * Debian on the server network). Peers resolve short and fully qualified, v4 and v6, and back; a
 * campus name still resolves; a rename, a delete and a policy that hides a peer are followed; a
 * host whose resolver is systemd-resolved gets names through it; {@code trellis down} puts the file
 * back byte for byte, and an agent killed with {@code kill -9} is cleaned up by the next one. Needs
 * root and dnsmasq; skipped visibly otherwise.
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
                // Authoritative for campus.example: other names there do not exist (NXDOMAIN), so
                // a bare name searched under it goes on to the next search domain.
                "--local=/campus.example/",
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
    for (TrellisAgentProcess a : List.of(r1, r2)) {
      Path conf = a.namespace().etc().resolve("resolv.conf");
      Files.write(conf, ORIGINAL);
      etc.add(conf);
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
    assertEquals("file", r1.statusNow().path("names").path("mode").asText());
    // Ping by name, through the resolver, across the relay.
    Await.until(
        "ping robot-2",
        WAIT,
        () -> r1.namespace().run(Tools.require("ping"), "-c", "1", "-W", "2", "robot-2").ok());

    // ROS 1 by names only, across the relay: master and subscriber on robot-1, publisher on
    // robot-2, ROS_HOSTNAME and ROS_MASTER_URI names, no ROS_IP.
    ros(r1, r2, campus.bed().workDir().resolve("ros"));

    // A host whose resolver is systemd-resolved: names through its per-link settings, a policy
    // that hides a peer, and a delete.
    resolvedHost(campus, server, key, r1, r2v4);

    // A rename is followed.
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

    // --accept-dns=false gives the host its file back while the node stays up; --accept-dns takes
    // it again.
    String asRobot1 = "--state-dir=" + r1.stateDir();
    r1.trellis("up", "--accept-dns=false", asRobot1).orThrow();
    assertArrayEquals(ORIGINAL, Files.readAllBytes(etc.get(0)));
    assertFalse(r1.statusNow().path("names").path("mode").isTextual(), "names off on robot-1");
    r1.trellis("up", "--accept-dns", asRobot1).orThrow();
    Await.until("robot-1 names back", WAIT, () -> getent(r1, "ahostsv4", "arm-2").ok());

    // down restores the file byte for byte.
    r1.trellis("down", "--state-dir", r1.stateDir().toString()).orThrow();
    assertArrayEquals(ORIGINAL, Files.readAllBytes(etc.get(0)));

    // A killed agent leaves its file behind; the next one starts from the original (restores it,
    // resumes, points the host at itself again), so down still gives back the original.
    Path r2conf = etc.get(1);
    assertFalse(Arrays.equals(ORIGINAL, Files.readAllBytes(r2conf)), "robot-2's resolver in place");
    r2.process().kill();
    r2.start();
    Await.until("robot-2 back up", WAIT, () -> r2.statusNow().path("connected").asBoolean());
    Await.until(
        "robot-2 resolving robot-1 again",
        WAIT,
        () -> first(r2, "ahostsv4", "robot-1").equals(r1.overlay()));
    r2.trellis("down", "--state-dir", r2.stateDir().toString()).orThrow();
    assertArrayEquals(ORIGINAL, Files.readAllBytes(r2conf));
  }

  /**
   * robot-3's resolver is systemd-resolved ({@link ResolvedHost}): the agent sets the interface's
   * DNS server and domains through it and never touches the stub resolv.conf; bare and qualified
   * names and reverse lookups work, campus names still go to the campus server. A policy that hides
   * robot-3 from robot-1 makes each unresolvable on the other; deleting robot-3 makes it
   * unresolvable everywhere and reverts resolved's link settings.
   */
  private void resolvedHost(
      CampusTestbed campus,
      TrellisServerProcess server,
      String key,
      TrellisAgentProcess r1,
      String r2v4)
      throws Exception {
    TrellisAgentProcess r3 = campus.newLabAgent("n3", "robot-3");
    ResolvedHost resolved = ResolvedHost.start(r3.namespace(), UPSTREAM, "campus.example");
    String stub = readlink(r3, "/etc/resolv.conf");
    r3.start(resolved.agentEnv());
    r3.up(server.url(), key);
    String link = r3.interfaceName();
    Await.until(
        "robot-3 resolving robot-1 through systemd-resolved",
        WAIT,
        () -> first(r3, "ahostsv4", "robot-1").equals(r1.overlay()));
    String linkStatus = resolved.linkStatus(r3.namespace(), link);
    assertTrue(linkStatus.contains("100.100.100.100"), linkStatus);
    assertTrue(linkStatus.contains("lab.internal ~64.100.in-addr.arpa"), linkStatus);
    assertEquals("resolved", r3.statusNow().path("names").path("mode").asText());
    assertEquals(r1.overlay(), first(r3, "ahostsv4", "robot-1.lab.internal"));
    assertTrue(first(r3, "ahostsv6", "robot-1").startsWith("fd7a:115c:a1e0:"), "v6");
    assertTrue(
        getent(r3, "hosts", r1.overlay()).stdout().contains("robot-1.lab.internal"), "reverse");
    assertEquals("198.18.10.80", first(r3, "ahostsv4", "www.campus.example"), "split DNS");
    assertEquals(stub, readlink(r3, "/etc/resolv.conf"), "resolv.conf left to resolved");
    String r3v4 = r3.overlay();
    Await.until(
        "robot-1 resolving robot-3", WAIT, () -> first(r1, "ahostsv4", "robot-3").equals(r3v4));

    // A policy that lets robot-1 and robot-2 reach each other only: robot-3 and robot-1 no longer
    // see, so no longer resolve, each other.
    Path policy = campus.bed().workDir().resolve("hide-robot-3.hujson");
    Files.writeString(
        policy,
        """
        {
          "hosts": { "r1": "%s/32", "r2": "%s/32" },
          "acls": [ { "action": "accept", "src": ["r1", "r2"], "dst": ["r1:*", "r2:*"] } ],
        }
        """
            .formatted(r1.overlay(), r2v4));
    server.admin("policy", "set", policy.toString()).orThrow();
    long hidden = System.nanoTime();
    Await.until("robot-3 hidden from robot-1", WAIT, () -> !getent(r1, "ahostsv4", "robot-3").ok());
    Metrics.report(
        "names: robot-3 unresolvable on robot-1 %.2f s after `trellis policy set` hid it",
        (System.nanoTime() - hidden) / 1e9);
    Await.until("robot-1 hidden from robot-3", WAIT, () -> !getent(r3, "ahostsv4", "robot-1").ok());
    assertTrue(getent(r1, "ahostsv4", "robot-2").ok(), "robot-2 still visible to robot-1");
    server.admin("policy", "clear").orThrow();
    Await.until("robot-3 visible again", WAIT, () -> first(r1, "ahostsv4", "robot-3").equals(r3v4));

    // Deleted: gone from robot-1's names, and robot-3's agent, logged out, reverts its link.
    long id = server.node("robot-3").path("id").asLong();
    server.admin("nodes", "delete", Long.toString(id)).orThrow();
    long deleted = System.nanoTime();
    Await.until("robot-3 deleted", WAIT, () -> !getent(r1, "ahostsv4", "robot-3").ok());
    Metrics.report(
        "names: robot-3 unresolvable on robot-1 %.2f s after `trellis nodes delete` returned",
        (System.nanoTime() - deleted) / 1e9);
    Await.until(
        "robot-3's link settings reverted",
        WAIT,
        () -> !resolved.linkStatus(r3.namespace(), link).contains("100.100.100.100"));
    assertEquals(stub, readlink(r3, "/etc/resolv.conf"), "resolv.conf still resolved's");
    r3.stop();
  }

  private static String readlink(TrellisAgentProcess on, String path) {
    return on.namespace().exec(Tools.require("readlink"), path).stdout().strip();
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
}
