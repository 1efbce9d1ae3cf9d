package dev.trellis.system.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.system.harness.FailureDump;
import dev.trellis.system.harness.Trellis;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Metrics;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.WgImpl;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The README's "A lab in five commands", run as written: its two command blocks are read from
 * README.md and typed into bash, the server block on a server host and the robot block on two
 * robots (the second with {@code --hostname robot-2}), each a namespace on one LAN. Only the
 * placeholders a person fills in are replaced ({@code SERVER}, {@code trellis-auth-…}), and {@code
 * sudo} is a no-op since the test is root. Each robot is its own host: its own mount namespace, so
 * {@code /var/lib/trellis} and {@code /var/run/wireguard} are its own. Passing means robot-1's
 * {@code ping robot-2} (by name, through the host's resolver) gets replies from robot-2's address.
 */
@ExtendWith(FailureDump.class)
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class ReadmeLabTest {
  private static final Duration WAIT = Duration.ofSeconds(90);
  private static final String SECTION = "## A lab in five commands";
  private static final String DONE = "README-BLOCK-DONE";

  /** The indented code blocks of the README's lab section, in order, one list of lines each. */
  static List<List<String>> labBlocks(Path readme) throws IOException {
    List<String> lines = Files.readAllLines(readme);
    int start = lines.indexOf(SECTION);
    assertTrue(start >= 0, "README has the section " + SECTION);
    List<List<String>> blocks = new ArrayList<>();
    List<String> current = null;
    for (String line : lines.subList(start + 1, lines.size())) {
      if (line.startsWith("#")) {
        break;
      }
      if (line.startsWith("    ") && !line.isBlank()) {
        if (current == null) {
          current = new ArrayList<>();
          blocks.add(current);
        }
        current.add(line.strip());
      } else if (!line.isBlank()) {
        current = null;
      }
    }
    return blocks;
  }

  @Test
  void theReadmeLabWorksAsWritten() throws IOException {
    Path home = WgImpl.home();
    List<List<String>> blocks = labBlocks(home.resolve("README.md"));
    assertEquals(2, blocks.size(), "a server block and a robot block: " + blocks);
    try (ControlLab lab = ControlLab.create()) {
      NetworkNamespace serverHost = lab.server().namespace();
      String serverAddress = lab.server().address();
      Path launcher = Trellis.launcher();

      HostProcess server =
          run(lab, serverHost, "server", hostDir(lab, "server", launcher), blocks.get(0), false);
      Await.until(
          "the README's server block to finish",
          WAIT,
          () -> server.output().contains(DONE) || !server.isAlive());
      String out = server.output();
      List<String> before = out.substring(0, out.indexOf(DONE)).lines().toList();
      String key = before.getLast().strip();
      assertTrue(key.startsWith("trellis-auth-"), "the key is the last line:\n" + out);

      List<String> robot =
          blocks.get(1).stream()
              .map(l -> l.replace("http://SERVER:", "http://" + serverAddress + ":"))
              .map(l -> l.replace("trellis-auth-…", key))
              .toList();
      List<String> robot2 =
          robot.stream().map(l -> l.replace("--hostname robot-1", "--hostname robot-2")).toList();
      NetworkNamespace r2 = lab.attach("r2", 21);
      NetworkNamespace r1 = lab.attach("r1", 22);
      HostProcess second = run(lab, r2, "robot-2", hostDir(lab, "robot-2", launcher), robot2, true);
      Await.until(
          "robot-2 up and pinging itself",
          WAIT,
          () -> second.output().contains("bytes from") || !second.isAlive());
      Matcher self =
          Pattern.compile("robot-2 \\(this node\\)\\s+(100\\.[0-9.]+),(fd7a:[0-9a-f:]+)")
              .matcher(second.output());
      assertTrue(self.find(), "robot-2's status shows its addresses:\n" + second.output());
      String robot2Address = self.group(1);
      String robot2Ipv6 = self.group(2);

      HostProcess first = run(lab, r1, "robot-1", hostDir(lab, "robot-1", launcher), robot, true);
      long started = System.nanoTime();
      // By name: ping prints "bytes from robot-2.trellis.internal (ADDRESS)", IPv6 first when the
      // host has it.
      Pattern reply =
          Pattern.compile(
              "bytes from (\\S+ \\()?("
                  + Pattern.quote(robot2Address)
                  + "|"
                  + Pattern.quote(robot2Ipv6)
                  + ")\\b");
      Await.within(WAIT, () -> reply.matcher(first.output()).find() || !first.isAlive());
      assertTrue(reply.matcher(first.output()).find(), "robot-1 pings robot-2:\n" + first.output());
      Metrics.report(
          "README lab: robot-1's block to its first ping reply of robot-2 in %d ms",
          (System.nanoTime() - started) / 1_000_000);
    }
  }

  /** A host's working directory: where `./trellis` (a link to the built launcher) is typed. */
  private static Path hostDir(ControlLab lab, String host, Path launcher) throws IOException {
    Path dir = lab.bed().workDir().resolve("readme-" + host);
    Files.createDirectories(dir);
    Files.createSymbolicLink(dir.resolve("trellis"), launcher);
    return dir;
  }

  /**
   * Types {@code lines} into bash in {@code dir} on host {@code ns}; a robot gets a mount namespace
   * of its own with empty /var/lib/trellis and /var/run/wireguard. The script then waits for its
   * background jobs (server, agent) so they stay tracked.
   */
  private static HostProcess run(
      ControlLab lab, NetworkNamespace ns, String host, Path dir, List<String> lines, boolean robot)
      throws IOException {
    StringBuilder script = new StringBuilder("sudo() { \"$@\"; }\ncd '" + dir + "'\n");
    for (String line : lines) {
      script.append(line).append('\n');
    }
    script.append("echo ").append(DONE).append("\nwait\n");
    Path file = dir.resolve("readme.sh");
    Files.writeString(file, script.toString());
    List<String> argv = new ArrayList<>();
    if (robot) {
      Files.createDirectories(Path.of("/var/lib/trellis"));
      Files.createDirectories(Path.of("/var/run/wireguard"));
      argv.addAll(
          List.of(
              "unshare",
              "--mount",
              "--propagation",
              "private",
              "bash",
              "-c",
              "mount -t tmpfs -o mode=0755 tmpfs /var/lib/trellis && mount -t tmpfs -o mode=0755 tmpfs /var/run/wireguard"
                  + " && exec bash '"
                  + file
                  + "'"));
    } else {
      argv.addAll(List.of("bash", file.toString()));
    }
    return ns.start("readme-" + host, Map.of(), argv.toArray(String[]::new));
  }
}
