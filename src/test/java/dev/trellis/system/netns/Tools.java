package dev.trellis.system.netns;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Locates the host binaries the network-namespace tests drive. */
public final class Tools {
  private static final List<String> SEARCH_PATH =
      List.of("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin");
  private static final Map<String, String> CACHE = new ConcurrentHashMap<>();

  /**
   * Binaries whose absence is a broken test environment (CI installs them): the suite fails, it
   * does not skip.
   */
  static final List<String> REQUIRED =
      List.of("ip", "wg", "wg-quick", "wireguard-go", "iperf3", "ping", "ss");

  private Tools() {}

  /**
   * Absolute path of a binary, searched in $PATH then in the usual system directories; null if
   * absent.
   */
  public static String find(String name) {
    return CACHE.computeIfAbsent(
        name,
        n -> {
          List<String> dirs = new ArrayList<>();
          String path = System.getenv("PATH");
          if (path != null) {
            dirs.addAll(List.of(path.split(":")));
          }
          dirs.addAll(SEARCH_PATH);
          for (String dir : dirs) {
            if (dir.isEmpty()) {
              continue;
            }
            Path candidate = Path.of(dir, n);
            if (Files.isRegularFile(candidate) && Files.isExecutable(candidate)) {
              return candidate.toString();
            }
          }
          return null;
        });
  }

  /** Absolute path of a required binary; throws with an installation hint if it is missing. */
  public static String require(String name) {
    String found = find(name);
    if (found == null) {
      throw new IllegalStateException(
          name
              + " not found in PATH or system directories; the network-namespace "
              + "tests need: "
              + String.join(", ", REQUIRED)
              + " (Debian/Ubuntu: apt-get install iproute2 wireguard-tools wireguard-go iperf3 iputils-ping)");
    }
    return found;
  }

  public static String ip() {
    return require("ip");
  }

  public static String wg() {
    return require("wg");
  }
}
