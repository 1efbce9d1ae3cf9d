package dev.trellis.system.deploy;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.Commands;
import dev.trellis.system.netns.WgImpl;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The robot's launcher, {@code ./trellis-node}: short commands start from the AOT cache the build
 * trained (their classes come from it, not from the jar); the agent does not use it. No root
 * needed. Timings are in docs/BENCHMARKS.md, not asserted here.
 */
class NodeLauncherTest {
  private static final String STATUS_CLASS = "dev.trellis.dataplane.cli.StatusCommand";

  private static CommandResult launch(Map<String, String> env, String... args) {
    Path home = WgImpl.home();
    Path launcher = home.resolve("trellis-node");
    assertTrue(Files.isExecutable(launcher), launcher + " is missing");
    List<String> argv = new java.util.ArrayList<>(List.of(launcher.toString()));
    argv.addAll(List.of(args));
    return Commands.run(argv, env, null, Commands.DEFAULT_TIMEOUT);
  }

  /** Where the JVM says it loaded {@link #STATUS_CLASS} from. */
  private static String statusClassSource(Map<String, String> env) {
    CommandResult r = launch(env, "status", "--help");
    assertTrue(r.ok(), "status --help failed:\n" + r.stdout() + r.stderr());
    return r.stdout()
        .lines()
        .filter(l -> l.contains(STATUS_CLASS + " "))
        .findFirst()
        .orElse("(not loaded)");
  }

  @Test
  void shortCommandsStartFromTheTrainedCache() {
    Path cache = WgImpl.home().resolve("data-plane/target/trellis-node.aot");
    assertTrue(Files.isRegularFile(cache), cache + " was not built by the package phase");
    String logging = "-Xlog:class+load=info:stdout";
    String withCache = statusClassSource(Map.of("TRELLIS_JAVA_OPTS", logging));
    assertTrue(withCache.contains("shared objects file"), withCache);
    String without = statusClassSource(Map.of("TRELLIS_JAVA_OPTS", logging, "TRELLIS_NO_AOT", "1"));
    assertFalse(without.contains("shared objects file"), without);
  }
}
