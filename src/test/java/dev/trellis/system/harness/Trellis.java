package dev.trellis.system.harness;

import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.WgImpl;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The {@code trellis} command of the built project ({@code <trellis.home>/trellis}), run inside a
 * namespace.
 */
public final class Trellis {
  private Trellis() {}

  /** The launcher; fails (not skips) when it or the jar it runs is missing: build Trellis first. */
  public static Path launcher() {
    Path home = WgImpl.home();
    Path launcher = home.resolve("trellis");
    Path jar = home.resolve("control-plane/target/trellis.jar");
    if (!Files.isExecutable(launcher)) {
      throw new AssertionError("Trellis launcher " + launcher + " is missing or not executable");
    }
    if (!Files.isRegularFile(jar)) {
      throw new AssertionError(
          jar + " is missing: build Trellis first (" + home.resolve("build") + ")");
    }
    return launcher;
  }

  /** {@code trellis ARGS...} in {@code ns}; never throws on a non-zero exit. */
  public static CommandResult run(NetworkNamespace ns, Duration timeout, String... args) {
    return ns.run(Map.of(), timeout, argv(List.of(args)));
  }

  /**
   * {@code trellis ARGS...} in the background in {@code ns}, tracked (and at the latest stopped) by
   * its bed.
   */
  public static HostProcess start(
      NetworkNamespace ns, String label, Map<String, String> env, List<String> args) {
    return ns.start(label, env, argv(args));
  }

  private static String[] argv(List<String> args) {
    List<String> argv = new ArrayList<>(args.size() + 1);
    argv.add(launcher().toString());
    argv.addAll(args);
    return argv.toArray(String[]::new);
  }
}
