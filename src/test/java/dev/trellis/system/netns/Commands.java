package dev.trellis.system.netns;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs host commands to completion with a timeout.
 *
 * <p>Output goes to files rather than pipes on purpose: daemons such as {@code wireguard-go} fork a
 * child that inherits stdout/stderr, so reading a pipe to end-of-file would block for the daemon's
 * lifetime. We wait for the process itself to exit, then read the files.
 */
public final class Commands {
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);
  private static final int CLIP = 8_000;
  private static final File DEV_NULL = new File("/dev/null");

  private Commands() {}

  /**
   * Runs argv on the host with a temporary scratch directory for output; never throws on non-zero
   * exit.
   */
  public static CommandResult run(
      List<String> argv, Map<String, String> env, String stdin, Duration timeout) {
    try {
      Path out = Files.createTempFile("trt-cmd-", ".out");
      Path err = Files.createTempFile("trt-cmd-", ".err");
      try {
        return run(argv, env, stdin, timeout, out, err);
      } finally {
        Files.deleteIfExists(out);
        Files.deleteIfExists(err);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Runs argv with stdout/stderr written to the given files (kept, for diagnostics). */
  public static CommandResult run(
      List<String> argv,
      Map<String, String> env,
      String stdin,
      Duration timeout,
      Path stdoutFile,
      Path stderrFile) {
    ProcessBuilder pb =
        new ProcessBuilder(argv)
            .redirectOutput(stdoutFile.toFile())
            .redirectError(stderrFile.toFile());
    if (stdin == null) {
      pb.redirectInput(DEV_NULL);
    }
    pb.environment().putAll(env);
    Process p;
    try {
      p = pb.start();
    } catch (IOException e) {
      throw new CommandFailedException(
          "cannot start " + String.join(" ", argv) + ": " + e.getMessage());
    }
    try {
      if (stdin != null) {
        try (OutputStream in = p.getOutputStream()) {
          in.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
      }
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        killTree(p.toHandle());
        p.waitFor(5, TimeUnit.SECONDS);
        CommandResult partial = new CommandResult(argv, -1, read(stdoutFile), read(stderrFile));
        throw new CommandFailedException(
            partial.describe("timed out after " + timeout.toSeconds() + " s"));
      }
    } catch (InterruptedException e) {
      killTree(p.toHandle());
      Thread.currentThread().interrupt();
      throw new CommandFailedException("interrupted while running " + String.join(" ", argv));
    } catch (IOException e) {
      killTree(p.toHandle());
      throw new UncheckedIOException(e);
    }
    return new CommandResult(argv, p.exitValue(), read(stdoutFile), read(stderrFile));
  }

  /** Runs argv on the host and throws with its output unless it exits with 0. */
  public static CommandResult check(List<String> argv) {
    return run(argv, Map.of(), null, DEFAULT_TIMEOUT).orThrow();
  }

  /** Forcibly kills a process and its (still attached) descendants. */
  static void killTree(ProcessHandle handle) {
    handle.descendants().forEach(ProcessHandle::destroyForcibly);
    handle.destroyForcibly();
  }

  static String read(Path file) {
    try {
      return Files.exists(file) ? Files.readString(file, StandardCharsets.UTF_8) : "";
    } catch (IOException e) {
      return "<unreadable: " + e.getMessage() + ">";
    }
  }

  static String clip(String s) {
    if (s.length() <= CLIP) {
      return s;
    }
    return "…(" + (s.length() - CLIP) + " chars clipped)…\n" + s.substring(s.length() - CLIP);
  }

  /** Last {@code lines} lines of a text. */
  public static String tail(String s, int lines) {
    String[] all = s.split("\n", -1);
    int from = Math.max(0, all.length - lines);
    return String.join("\n", Arrays.asList(all).subList(from, all.length));
  }
}
