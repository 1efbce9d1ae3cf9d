package dev.trellis.system.control;

import static dev.trellis.system.harness.TrellisAgentProcess.ipv4;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.system.harness.FailureDump;
import dev.trellis.system.harness.Trellis;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisServerProcess;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.Metrics;
import dev.trellis.system.netns.NetworkNamespace;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * What a new lab admin met in the first hour, each through the CLI as they met it: a command typed
 * while the agent is still starting, the URL the server advertises, mistyped settings, a second
 * server on a data directory in use or a port in use, the status table, stale admin credentials,
 * the server's log, status as a non-root user, renaming, {@code ip SELF}, {@code logout}, {@code
 * version}, and a second agent on one host. One lab (server and two agents on a LAN) for all of
 * them. Needs root; skipped visibly otherwise.
 */
@ExtendWith(FailureDump.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class FirstHourTest {
  private static final Duration WAIT = Duration.ofSeconds(30);
  private static final Duration COMMAND = Duration.ofSeconds(60);

  private static ControlLab lab;
  private static TrellisServerProcess server;
  private static String key;
  private static TrellisAgentProcess a;
  private static TrellisAgentProcess b;

  @BeforeAll
  @Timeout(value = 240, unit = TimeUnit.SECONDS)
  static void startLab() {
    lab = ControlLab.create();
    server = lab.server();
    server.start();
    server.admin("users", "create", "lab").orThrow();
    key = server.createReusableAuthKey("lab");
  }

  @AfterAll
  static void tearDown() {
    if (lab != null) {
      lab.close();
      lab = null;
    }
  }

  private static CommandResult node(TrellisAgentProcess agent, String... args) {
    String[] full = new String[args.length + 2];
    System.arraycopy(args, 0, full, 0, args.length);
    full[args.length] = "--state-dir";
    full[args.length + 1] = agent.stateDir().toString();
    return agent.trellis(full);
  }

  /** 1: `trellis agent &` then at once `trellis up`: up waits for the starting agent. */
  @Test
  @Order(1)
  void upRightAfterStartingTheAgentWaitsForIt() {
    a = lab.newAgent("a", "robot-a");
    a.launch();
    CommandResult up =
        node(a, "up", "--login-server", server.url(), "--authkey", key, "--hostname", "robot-a");
    assertTrue(up.ok(), "up right after agent &: " + up);
    Metrics.report(
        "first hour: up right after agent & %s",
        up.stderr().contains("waiting for the agent") ? "waited for the agent" : "found it ready");
    b = lab.newAgent("b", "robot-b");
    b.start();
    b.up(server.url(), key);
    Await.until(
        "robot-a and robot-b online to each other",
        WAIT,
        () ->
            TrellisAgentProcess.connectedWithPeerOnline(a.statusNow(), "robot-b")
                && TrellisAgentProcess.connectedWithPeerOnline(b.statusNow(), "robot-a"));
  }

  /** 2: a server listening on 0.0.0.0 tells everyone its host address, never 127.0.0.1. */
  @Test
  @Order(2)
  void theServerNeverAdvertisesALoopbackUrl() throws IOException {
    String printed =
        server
            .process()
            .output()
            .lines()
            .filter(l -> l.startsWith("server URL: "))
            .findFirst()
            .orElseThrow()
            .substring("server URL: ".length())
            .strip();
    assertEquals(server.address(), URI.create(printed).getHost(), "printed at start");
    JsonNode cli =
        TrellisAgentProcess.parse(Files.readString(server.dataDir().resolve("cli.json")));
    assertEquals(server.address(), URI.create(cli.path("url").asText()).getHost(), "cli.json");
    for (JsonNode relay : server.json("relays", "list")) {
      String url = relay.path("url").asText("");
      assertFalse(url.contains("127.0.0.1") || url.contains("localhost"), "relays list: " + url);
    }
  }

  /** 3: a mistyped setting is an error that names it and the setting meant. */
  @Test
  @Order(3)
  void aMistypedSettingStopsTheServerWithTheNearestKnownOne() throws IOException {
    Path conf = server.dataDir().resolveSibling("typo.conf");
    Files.writeString(conf, "trellis.relay.enable = false\n");
    CommandResult r =
        Trellis.run(
            server.namespace(),
            COMMAND,
            "server",
            "--config",
            conf.toString(),
            "--data-dir",
            server.dataDir().resolveSibling("typo-data").toString(),
            "--listen",
            "0.0.0.0:8091");
    assertNotEquals(0, r.exitCode(), r.toString());
    assertTrue(r.stderr().contains("unknown setting trellis.relay.enable"), r.stderr());
    assertTrue(r.stderr().contains("did you mean trellis.relay.enabled?"), r.stderr());
  }

  /** 4: a data directory in use, or a port in use: one clear line and a non-zero exit. */
  @Test
  @Order(4)
  void aBusyDataDirectoryOrPortIsOneLineAndAnExit() {
    CommandResult sameDir =
        Trellis.run(
            server.namespace(),
            COMMAND,
            "server",
            "--data-dir",
            server.dataDir().toString(),
            "--listen",
            "0.0.0.0:8092");
    assertNotEquals(0, sameDir.exitCode(), sameDir.toString());
    assertTrue(sameDir.stderr().contains("is in use by another trellis server"), sameDir.stderr());
    assertNoStackTrace(sameDir);

    Path conf = server.dataDir().resolveSibling("other-stun.conf");
    try {
      Files.writeString(conf, "trellis.stun.listen = \"0.0.0.0:3479\"\n");
    } catch (IOException e) {
      throw new AssertionError(e);
    }
    CommandResult samePort =
        Trellis.run(
            server.namespace(),
            COMMAND,
            "server",
            "--config",
            conf.toString(),
            "--data-dir",
            server.dataDir().resolveSibling("second-data").toString(),
            "--listen",
            "0.0.0.0:" + TrellisServerProcess.PORT);
    assertNotEquals(0, samePort.exitCode(), samePort.toString());
    assertTrue(
        samePort.stderr().contains("0.0.0.0:" + TrellisServerProcess.PORT), samePort.stderr());
    assertNoStackTrace(samePort);
  }

  private static void assertNoStackTrace(CommandResult r) {
    String all = r.stdout() + r.stderr();
    assertFalse(all.contains("\tat ") || all.contains("Exception:"), "no stack trace: " + all);
  }

  /** 5: the status table shows each peer's path: direct IP:PORT here, on one LAN. */
  @Test
  @Order(5)
  void theStatusTableShowsEachPeersPath() {
    Await.until("a direct path from robot-a to robot-b", WAIT, () -> "direct".equals(a.pathTo(b)));
    String table = node(a, "status").orThrow().stdout();
    assertTrue(table.lines().anyMatch(l -> l.contains("PATH")), table);
    String row = table.lines().filter(l -> l.startsWith("robot-b")).findFirst().orElseThrow();
    assertTrue(row.contains("direct " + b.address() + ":"), row);
  }

  /** 6: admin commands with a stale cli.json name the server and the file they used. */
  @Test
  @Order(6)
  void staleAdminCredentialsNameTheServerAndTheFile() throws IOException {
    Path stale = server.dataDir().resolveSibling("stale-data");
    Files.createDirectories(stale);
    Files.writeString(
        stale.resolve("cli.json"),
        "{\"url\":\"" + server.url() + "\",\"apiKey\":\"trellis-api-stale0000stale0000\"}");
    CommandResult r =
        Trellis.run(server.namespace(), COMMAND, "users", "list", "--data-dir", stale.toString());
    assertNotEquals(0, r.exitCode(), r.toString());
    assertTrue(r.stderr().contains(server.url()), r.stderr());
    assertTrue(r.stderr().contains(stale.resolve("cli.json").toString()), r.stderr());
  }

  /**
   * 7: the server logs logins and refusals (no secrets) and admin actions; the agent names peers.
   */
  @Test
  @Order(7)
  void theServerLogsLoginsRefusalsAndAdminActions() {
    TrellisAgentProcess c = lab.newAgent("c", "robot-c");
    c.start();
    String bogus = "trellis-auth-bogusbogusbogusbogus";
    CommandResult refused =
        node(c, "up", "--login-server", server.url(), "--authkey", bogus, "--hostname", "robot-c");
    assertNotEquals(0, refused.exitCode(), refused.toString());
    String log = server.process().output();
    assertTrue(log.contains("login: robot-a (node"), log);
    assertTrue(log.contains("user lab"), log);
    assertTrue(log.contains("login refused: machine"), log);
    assertTrue(log.contains("admin: create user lab"), log);
    assertFalse(log.contains(bogus) || log.contains(key), "no auth key in the server log");
    Await.until(
        "robot-a's log naming robot-b's direct path by hostname",
        WAIT,
        () -> a.process().output().contains("direct path to robot-b via"));
  }

  /**
   * 8: status as a user who may not reach the agent says permission denied and what to do. The jar
   * is copied where that user can read it (the checkout may be under a private home).
   */
  @Test
  @Order(8)
  void statusAsNonRootSaysPermissionDenied() throws IOException {
    Path dir = Files.createTempDirectory("trellis-nobody");
    Path jar = dir.resolve("trellis.jar");
    Files.copy(Trellis.launcher().resolveSibling("control-plane/target/trellis.jar"), jar);
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.setPosixFilePermissions(jar, PosixFilePermissions.fromString("rw-r--r--"));
    try {
      CommandResult r =
          a.namespace()
              .run(
                  Map.of(),
                  COMMAND,
                  "runuser",
                  "-u",
                  "nobody",
                  "--",
                  Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                  "-jar",
                  jar.toString(),
                  "status",
                  "--state-dir",
                  a.stateDir().toString());
      assertNotEquals(0, r.exitCode(), r.toString());
      assertTrue(r.stderr().contains("permission denied"), r.stderr());
      assertTrue(r.stderr().contains("sudo"), r.stderr());
    } finally {
      Files.delete(jar);
      Files.delete(dir);
    }
  }

  /** 9: up --hostname on a registered node, ip SELF, version, logout. */
  @Test
  @Order(9)
  void renameIpOfSelfVersionAndLogoutSaySomething() {
    CommandResult rename = node(a, "up", "--hostname", "robot-renamed");
    assertNotEquals(0, rename.exitCode(), rename.toString());
    assertTrue(rename.stderr().contains("registered as robot-a"), rename.stderr());
    assertTrue(rename.stderr().contains("--authkey"), rename.stderr());

    String self = node(a, "ip", "-4", "robot-a").orThrow().stdout().strip();
    assertEquals(ipv4(a.statusNow().path("self")), self);

    CommandResult version = a.trellis("version").orThrow();
    assertTrue(version.stdout().startsWith("trellis "), version.stdout());

    TrellisAgentProcess d = lab.newAgent("d", "robot-d");
    d.start();
    d.up(server.url(), key);
    CommandResult logout = node(d, "logout").orThrow();
    assertTrue(logout.stdout().contains("logged out"), logout.stdout());
  }

  /** 10: a second agent on one host says which flags it needs. */
  @Test
  @Order(10)
  void aSecondAgentOnOneHostNamesTheFlagsItNeeds() throws IOException {
    NetworkNamespace ns = a.namespace();
    CommandResult sameState =
        Trellis.run(
            ns,
            COMMAND,
            "agent",
            "--state-dir",
            a.stateDir().toString(),
            "--interface",
            a.interfaceName() + "x");
    assertNotEquals(0, sameState.exitCode(), sameState.toString());
    assertTrue(sameState.stderr().contains("--state-dir"), sameState.stderr());

    Path other = Files.createTempDirectory("trellis-second-agent");
    CommandResult sameInterface =
        Trellis.run(
            ns,
            COMMAND,
            "agent",
            "--state-dir",
            other.toString(),
            "--interface",
            a.interfaceName());
    assertNotEquals(0, sameInterface.exitCode(), sameInterface.toString());
    assertTrue(sameInterface.stderr().contains("--interface"), sameInterface.stderr());
    // The first agent is unharmed.
    assertTrue(a.statusNow().path("connected").asBoolean(), "robot-a still connected");
  }
}
