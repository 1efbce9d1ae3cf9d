package dev.trellis.system.netns;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;

/**
 * Environment checks for the network-namespace tests. Not being root (or not being allowed to
 * create network namespaces) skips them, visibly; missing tools fail them, because CI is expected
 * to install them.
 */
public final class Prerequisites {
  private static volatile Boolean verified;

  private Prerequisites() {}

  /** Call from {@code @BeforeAll}/{@code @BeforeEach}. */
  public static void check() {
    if (Boolean.TRUE.equals(verified)) {
      return;
    }
    String why = whyNoNamespaces();
    if (why != null) {
      String message =
          "network-namespace WireGuard tests need root and network namespaces; skipped ("
              + why
              + ")";
      System.err.println("[netns] " + message);
      Assumptions.assumeTrue(false, message);
    }
    List<String> missing = new ArrayList<>();
    for (String tool : Tools.REQUIRED) {
      if (Tools.find(tool) == null) {
        missing.add(tool);
      }
    }
    if (!Files.exists(Path.of("/dev/net/tun"))) {
      missing.add("/dev/net/tun (TUN device)");
    }
    if (!missing.isEmpty()) {
      throw new AssertionError(
          "network-namespace WireGuard tests cannot run: missing "
              + String.join(", ", missing)
              + ". Install them (Debian/Ubuntu: apt-get install iproute2 wireguard-tools wireguard-go iperf3 iputils-ping);"
              + " these tests fail rather than skip when tools are missing.");
    }
    verified = true;
  }

  private static String whyNoNamespaces() {
    long uid = uid();
    if (uid != 0) {
      return "running as uid " + uid;
    }
    String ip = Tools.find("ip");
    if (ip == null) {
      return null; // reported as a missing tool
    }
    String probe = "trt-probe-" + Netns.random(6);
    CommandResult add =
        Commands.run(List.of(ip, "netns", "add", probe), Map.of(), null, Commands.DEFAULT_TIMEOUT);
    if (!add.ok()) {
      return "cannot create a network namespace: " + (add.stderr() + add.stdout()).strip();
    }
    Commands.run(List.of(ip, "netns", "del", probe), Map.of(), null, Commands.DEFAULT_TIMEOUT);
    return null;
  }

  private static long uid() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("Uid:")) {
          return Long.parseLong(line.substring(4).strip().split("\\s+")[1]); // effective uid
        }
      }
    } catch (IOException | RuntimeException e) {
      // fall through
    }
    CommandResult r = Commands.run(List.of("id", "-u"), Map.of(), null, Commands.DEFAULT_TIMEOUT);
    return r.ok() ? Long.parseLong(r.stdout().strip()) : -1;
  }
}
