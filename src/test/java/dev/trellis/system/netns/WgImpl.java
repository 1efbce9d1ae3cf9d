package dev.trellis.system.netns;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The userspace WireGuard implementations under test (Trellis with and without offloads). Both are
 * started the same way, {@code EXE NAME}, daemonize once interface NAME and
 * /var/run/wireguard/NAME.sock exist, and are configured with wg(8).
 */
public enum WgImpl {
  /** Trellis, through its launcher {@code <trellis.home>/trellis-wg}. */
  TRELLIS {
    @Override
    public String executable() {
      return home().resolve("trellis-wg").toString();
    }

    @Override
    public void checkAvailable() {
      Path launcher = home().resolve("trellis-wg");
      Path jar = home().resolve("control-plane/target/trellis.jar");
      if (!Files.isExecutable(launcher)) {
        throw new AssertionError("Trellis launcher " + launcher + " is missing or not executable");
      }
      if (!Files.isRegularFile(jar)) {
        throw new AssertionError(
            jar + " is missing: build Trellis first (" + home().resolve("build") + ")");
      }
    }
  },
  /** Trellis with every offload off ({@code TRELLIS_OFFLOADS=none}): the portable paths. */
  TRELLIS_NO_OFFLOADS {
    @Override
    public String executable() {
      return TRELLIS.executable();
    }

    @Override
    public void checkAvailable() {
      TRELLIS.checkAvailable();
    }

    @Override
    public Map<String, String> environment(Map<String, String> extra) {
      Map<String, String> env = super.environment(extra);
      env.putIfAbsent("TRELLIS_OFFLOADS", "none");
      return env;
    }
  },
  /** Stock wireguard-go, the reference userspace implementation. */
  WIREGUARD_GO {
    @Override
    public String executable() {
      return Tools.require("wireguard-go");
    }

    @Override
    public void checkAvailable() {
      Tools.require("wireguard-go");
    }
  };

  /** Whether this is Trellis (with or without offloads). */
  public boolean isTrellis() {
    return this != WIREGUARD_GO;
  }

  /** Absolute path of the program that creates an interface: {@code EXE NAME}. */
  public abstract String executable();

  /** Fails with a clear message if the implementation cannot be started at all. */
  public abstract void checkAvailable();

  /** argv that creates interface {@code ifname} (run it inside a namespace). */
  public List<String> startCommand(String ifname) {
    return List.of(executable(), ifname);
  }

  /**
   * Environment for the daemon: verbose logging (into the harness's log file) plus {@code extra}.
   */
  public Map<String, String> environment(Map<String, String> extra) {
    Map<String, String> env = new HashMap<>();
    env.put("LOG_LEVEL", "verbose");
    env.putAll(extra);
    return env;
  }

  /**
   * Trellis project root: system property {@code trellis.home} (set by surefire), else searched
   * upwards.
   */
  public static Path home() {
    String prop = System.getProperty("trellis.home");
    if (prop != null && !prop.isBlank()) {
      return Path.of(prop).toAbsolutePath().normalize();
    }
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      if (Files.exists(dir.resolve("trellis-wg"))) {
        return dir;
      }
    }
    throw new IllegalStateException("cannot locate the Trellis project root: set -Dtrellis.home");
  }
}
