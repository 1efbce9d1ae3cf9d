package dev.trellis.system.netns;

import java.io.File;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * A background process started by the harness (e.g. an iperf3 server or client). Its stdout and
 * stderr go to one log file. The owning {@link Netns} kills it on close if it is still running.
 */
public final class HostProcess {
  private static final File DEV_NULL = new File("/dev/null");

  private final String label;
  private final List<String> argv;
  private final Path log;
  private final Process process;

  private HostProcess(String label, List<String> argv, Path log, Process process) {
    this.label = label;
    this.argv = argv;
    this.log = log;
    this.process = process;
  }

  static HostProcess start(String label, List<String> argv, Map<String, String> env, Path log) {
    ProcessBuilder pb =
        new ProcessBuilder(argv)
            .redirectInput(DEV_NULL)
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
    pb.environment().putAll(env);
    try {
      return new HostProcess(label, argv, log, pb.start());
    } catch (IOException e) {
      throw new CommandFailedException(
          "cannot start " + String.join(" ", argv) + ": " + e.getMessage());
    }
  }

  public long pid() {
    return process.pid();
  }

  public String label() {
    return label;
  }

  public boolean isAlive() {
    return process.isAlive();
  }

  public Path log() {
    return log;
  }

  /** Everything the process has written so far (stdout and stderr interleaved). */
  public String output() {
    return Commands.read(log);
  }

  /**
   * Waits until {@code ready} holds (e.g. a line in {@link #output()}); fails at once, with the
   * output's tail, if the process exits first. {@code what} names the wait in messages.
   */
  public void awaitReady(String what, Duration timeout, BooleanSupplier ready) {
    Await.until(
        what + " (" + this + ")",
        timeout,
        () -> {
          if (!isAlive()) {
            throw new AssertionError(label + " exited early:\n" + Commands.tail(output(), 60));
          }
          return ready.getAsBoolean();
        });
  }

  /** Waits for exit; returns the exit status, or empty if it is still running at the deadline. */
  public OptionalInt waitFor(Duration timeout) {
    try {
      if (process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        return OptionalInt.of(process.exitValue());
      }
      return OptionalInt.empty();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted waiting for " + label, e);
    }
  }

  /** Waits for exit and returns the result; throws with the output on timeout. */
  public CommandResult await(Duration timeout) {
    OptionalInt exit = waitFor(timeout);
    if (exit.isEmpty()) {
      stop();
      throw new CommandFailedException(
          new CommandResult(argv, -1, output(), "")
              .describe(
                  "(" + label + ") still running after " + timeout.toSeconds() + " s; killed"));
    }
    return new CommandResult(argv, exit.getAsInt(), output(), "");
  }

  /**
   * SIGTERM to this process only (a daemon's own clean shutdown: no SIGKILL, descendants untouched)
   * and waits up to {@code grace}; returns its exit status, or empty if it is still running.
   */
  public OptionalInt terminate(Duration grace) {
    if (process.isAlive()) {
      process.destroy();
    }
    return waitFor(grace);
  }

  /**
   * SIGKILL to this process only, as a crash would end it (no shutdown hooks run); waits for it to
   * be gone.
   */
  public void kill() {
    if (process.isAlive()) {
      process.destroyForcibly();
    }
    waitFor(Duration.ofSeconds(10));
  }

  /** SIGTERM, a short grace period, then SIGKILL; also for descendants it started. */
  public void stop() {
    if (!process.isAlive()) {
      return;
    }
    List<ProcessHandle> children = process.descendants().toList();
    process.destroy();
    children.forEach(ProcessHandle::destroy);
    if (waitFor(Duration.ofSeconds(3)).isEmpty()) {
      children.forEach(ProcessHandle::destroyForcibly);
      process.destroyForcibly();
      waitFor(Duration.ofSeconds(3));
    }
  }

  @Override
  public String toString() {
    return label + " (pid " + pid() + ")";
  }
}
