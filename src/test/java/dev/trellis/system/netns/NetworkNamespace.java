package dev.trellis.system.netns;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * One network namespace created by a {@link Netns}; runs commands inside it via {@code ip netns
 * exec}.
 */
public final class NetworkNamespace {
  private final Netns owner;
  private final String name;

  NetworkNamespace(Netns owner, String name) {
    this.owner = owner;
    this.name = name;
  }

  public String name() {
    return name;
  }

  public Netns owner() {
    return owner;
  }

  /** A process whose mount namespace every later command enters (see {@link #enterVia}). */
  private volatile long mountHolder;

  /**
   * From now on commands run in {@code holder}'s mount and network namespaces (a host with mounts
   * of its own, e.g. a private D-Bus and systemd-resolved) instead of through {@code ip netns
   * exec}.
   */
  public void enterVia(long holder) {
    this.mountHolder = holder;
  }

  /** The directory {@code ip netns exec} mounts over /etc, file by file. */
  public Path etc() {
    return Path.of("/etc/netns", name);
  }

  List<String> wrap(List<String> argv) {
    long holder = mountHolder;
    List<String> full =
        holder == 0
            ? new ArrayList<>(List.of(Tools.ip(), "netns", "exec", name))
            : new ArrayList<>(
                List.of(
                    Tools.require("nsenter"),
                    "--target",
                    Long.toString(holder),
                    "--mount",
                    "--net",
                    "--"));
    full.addAll(argv);
    return full;
  }

  /** Runs a command in this namespace and throws (with its output) unless it exits with 0. */
  public CommandResult exec(String... argv) {
    return run(Map.of(), Commands.DEFAULT_TIMEOUT, argv).orThrow();
  }

  /** Runs a command in this namespace; the caller inspects the exit status. */
  public CommandResult run(String... argv) {
    return run(Map.of(), Commands.DEFAULT_TIMEOUT, argv);
  }

  /**
   * Runs a command in this namespace with extra environment and a timeout; never throws on non-zero
   * exit.
   */
  public CommandResult run(Map<String, String> env, Duration timeout, String... argv) {
    return owner.runLogged(wrap(Arrays.asList(argv)), env, timeout);
  }

  /**
   * Starts a tracked background process in this namespace; it is killed on {@link Netns#close()}.
   */
  public HostProcess start(String label, Map<String, String> env, String... argv) {
    return owner.startTracked(label, wrap(Arrays.asList(argv)), env);
  }

  /** PIDs of all processes whose network namespace is this one ({@code ip netns pids}). */
  public List<Long> pids() {
    CommandResult r =
        Commands.run(
            List.of(Tools.ip(), "netns", "pids", name), Map.of(), null, Commands.DEFAULT_TIMEOUT);
    if (!r.ok()) {
      return List.of();
    }
    return r.stdout()
        .lines()
        .map(String::strip)
        .filter(s -> !s.isEmpty())
        .map(Long::parseLong)
        .toList();
  }

  /** The argument vector of a process, or an empty list if it has gone. */
  public static List<String> cmdline(long pid) {
    try {
      byte[] raw = Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline"));
      String s = new String(raw, StandardCharsets.UTF_8);
      if (s.isEmpty()) {
        return List.of();
      }
      return Arrays.asList(s.split("\0"));
    } catch (IOException e) {
      return List.of();
    }
  }

  /** Whether a link of this name exists in the namespace. */
  public boolean hasLink(String ifname) {
    return run(Tools.ip(), "link", "show", "dev", ifname).ok();
  }

  @Override
  public String toString() {
    return name;
  }
}
