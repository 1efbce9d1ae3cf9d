package dev.trellis.system.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.system.harness.FailureDump;
import dev.trellis.system.harness.NetnsBed;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.Commands;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Netns;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Tools;
import dev.trellis.system.netns.WgImpl;
import dev.trellis.system.netns.WgInterface;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The Debian packages as a lab installs them: {@code scripts/package-deb} builds both, then each is
 * installed with {@code dpkg -i} on this machine (CI runs as root), run from its installed paths
 * with its own bundled runtime, and purged again, leaving nothing of it behind. The two conflict
 * (both are {@code /usr/bin/trellis}), so they take turns. Needs root; skipped visibly without.
 */
@ExtendWith({FailureDump.class, NetnsBed.class})
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DebianPackageTest {
  private static final Duration BUILD_TIMEOUT = Duration.ofMinutes(10);
  private static final Duration DPKG_TIMEOUT = Duration.ofMinutes(3);
  private static final Duration START_TIMEOUT = Duration.ofSeconds(60);
  private static final String STATUS_CLASS = "dev.trellis.dataplane.cli.StatusCommand";

  private static Path debs;

  @BeforeAll
  static void buildPackages() throws IOException {
    dev.trellis.system.netns.Prerequisites.check();
    Tools.require("dpkg");
    Tools.require("fakeroot");
    debs = Files.createTempDirectory("trellis-debs-");
    CommandResult built =
        Commands.run(
            List.of(WgImpl.home().resolve("scripts/package-deb").toString(), debs.toString()),
            Map.of(),
            null,
            BUILD_TIMEOUT);
    assertTrue(built.ok(), "scripts/package-deb failed:\n" + built.stdout() + built.stderr());
  }

  private static Path deb(String name) throws IOException {
    try (Stream<Path> files = Files.list(debs)) {
      return files
          .filter(p -> p.getFileName().toString().startsWith(name + "_"))
          .findFirst()
          .orElseThrow(() -> new AssertionError("no " + name + " package in " + debs));
    }
  }

  private static CommandResult host(String... argv) {
    return Commands.run(List.of(argv), Map.of(), null, DPKG_TIMEOUT);
  }

  private static void install(Path deb) {
    CommandResult r = host("dpkg", "-i", deb.toString());
    assertTrue(r.ok(), "dpkg -i " + deb + " failed:\n" + r.stdout() + r.stderr());
  }

  private static void remove(String name) {
    CommandResult r = host("dpkg", "--purge", name);
    assertTrue(r.ok(), "dpkg --purge " + name + " failed:\n" + r.stdout() + r.stderr());
    assertFalse(host("dpkg", "-s", name).ok(), name + " still known to dpkg after --purge");
  }

  @Test
  @Order(1)
  void theNodePackageRunsTheAgentAndWgWithoutAJdk(Netns bed) throws Exception {
    Path deb = deb("trellis-node");
    String depends = host("dpkg-deb", "-f", deb.toString(), "Depends").stdout();
    assertFalse(depends.contains("libx11"), "a robot's package needs no X11: " + depends);
    install(deb);
    try {
      CommandResult version = host("/usr/bin/trellis", "--version");
      assertTrue(version.ok() && version.stdout().startsWith("trellis "), version.toString());
      assertTrue(
          Files.isRegularFile(Path.of("/lib/systemd/system/trellis-agent.service")),
          "the agent's systemd unit");

      // Short commands start from the AOT cache trained with the package's own runtime.
      CommandResult help =
          Commands.run(
              List.of("/usr/bin/trellis", "status", "--help"),
              Map.of("JAVA_TOOL_OPTIONS", "-Xlog:class+load=info:stdout"),
              null,
              Commands.DEFAULT_TIMEOUT);
      String loaded =
          help.stdout()
              .lines()
              .filter(l -> l.contains(STATUS_CLASS + " "))
              .findFirst()
              .orElse("(not loaded)");
      assertTrue(loaded.contains("shared objects file"), "StatusCommand from the cache: " + loaded);

      // The agent from its installed launcher: its TUN interface, and the CLI talks to it.
      NetworkNamespace ns = bed.newNamespace("deb");
      Path state = bed.workDir().resolve("agent-state");
      String ifname = Netns.uniqueIfName("tdeb");
      HostProcess agent =
          ns.start(
              "trellis-agent-deb",
              Map.of(),
              "/opt/trellis-node/bin/trellis-agent",
              "--state-dir",
              state.toString(),
              "--interface",
              ifname);
      agent.awaitReady(
          "the packaged agent answering trellis status",
          START_TIMEOUT,
          () ->
              ns.run("/usr/bin/trellis", "status", "--json", "--state-dir", state.toString()).ok());
      assertTrue(ns.hasLink(ifname), "the agent's interface " + ifname);
      assertTrue(agent.terminate(Duration.ofSeconds(10)).isPresent(), "agent stops on SIGTERM");
      assertFalse(ns.hasLink(ifname), "its interface goes with it");

      // trellis-wg as wg-quick starts it: interface and UAPI socket, configured with wg(8).
      String wgName = Netns.uniqueIfName("tdebwg");
      HostProcess starter = ns.start("trellis-wg-deb", Map.of(), "/usr/bin/trellis-wg", wgName);
      CommandResult started = starter.await(START_TIMEOUT);
      assertTrue(started.ok(), "trellis-wg " + wgName + ":\n" + started.stdout());
      WgInterface wg = WgInterface.adopt(ns, WgImpl.TRELLIS, wgName, starter.log());
      try {
        wg.wg("set", wgName, "listen-port", "51999");
        assertEquals("51999", wg.wg("show", wgName, "listen-port").strip());
      } finally {
        wg.stop();
      }
      assertTrue(wg.gone(), "trellis-wg stopped");
    } finally {
      remove("trellis-node");
    }
    for (String path :
        List.of(
            "/opt/trellis-node",
            "/usr/bin/trellis",
            "/usr/bin/trellis-wg",
            "/lib/systemd/system/trellis-agent.service")) {
      assertFalse(Files.exists(Path.of(path)), path + " left behind by dpkg --purge");
    }
  }

  @Test
  @Order(2)
  void theServerPackageStartsOnEmbeddedDefaults(Netns bed) throws Exception {
    install(deb("trellis-server"));
    try {
      CommandResult version = host("/usr/bin/trellis", "--version");
      assertTrue(version.ok() && version.stdout().startsWith("trellis "), version.toString());
      assertTrue(
          Files.isRegularFile(Path.of("/lib/systemd/system/trellis-server.service")),
          "the server's systemd unit");

      NetworkNamespace ns = bed.newNamespace("srv");
      // An address besides loopback, as a server host has: the CLI tells nodes the server's URL.
      bed.veth(ns, "campus0", bed.newNamespace("lan"), "campus1");
      ns.run(Tools.ip(), "addr", "add", "198.18.77.1/24", "dev", "campus0").orThrow();
      Path data = bed.workDir().resolve("server-data");
      HostProcess server =
          ns.start(
              "trellis-server-deb",
              Map.of(),
              "/opt/trellis-server/bin/trellis-server",
              "server",
              "--data-dir",
              data.toString(),
              "--listen",
              "0.0.0.0:18080");
      server.awaitReady(
          "the packaged server listening",
          Duration.ofSeconds(90),
          () -> server.output().contains("trellis server listening on"));
      CommandResult created =
          ns.run("/usr/bin/trellis", "users", "create", "lab", "--data-dir", data.toString());
      assertTrue(created.ok(), "trellis users create:\n" + created.stdout() + created.stderr());
      CommandResult users =
          ns.run("/usr/bin/trellis", "users", "list", "--data-dir", data.toString());
      assertTrue(users.stdout().contains("lab"), users.stdout());
      assertTrue(server.terminate(Duration.ofSeconds(30)).isPresent(), "server stops on SIGTERM");
    } finally {
      remove("trellis-server");
    }
    for (String path :
        List.of(
            "/opt/trellis-server",
            "/usr/bin/trellis",
            "/lib/systemd/system/trellis-server.service")) {
      assertFalse(Files.exists(Path.of(path)), path + " left behind by dpkg --purge");
    }
  }
}
