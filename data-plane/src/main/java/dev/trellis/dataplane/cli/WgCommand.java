package dev.trellis.dataplane.cli;

import dev.trellis.dataplane.offload.Offloads;
import dev.trellis.dataplane.tun.TunDevice;
import dev.trellis.dataplane.uapi.UapiServer;
import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.dataplane.wireguard.Timing;
import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * `trellis wg NAME`: a userspace WireGuard interface that behaves like `wireguard-go NAME`. Without
 * -f it starts itself again in the background and returns once the interface and its control socket
 * exist; `wg`, `wg-quick` and `ip` then manage it.
 */
@Command(
    name = "wg",
    mixinStandardHelpOptions = true,
    description = {
      "Create WireGuard interface NAME (a TUN device) and serve the userspace API on "
          + "/var/run/wireguard/NAME.sock, like wireguard-go. Configure it with wg(8) and ip(8).",
      "Environment: LOG_LEVEL=debug|info|error, TRELLIS_WG_LOG=FILE (background log, default "
          + "/tmp/trellis-wg-NAME.log), TRELLIS_WG_MTU (default 1420)."
    })
public final class WgCommand implements Callable<Integer> {
  private static final long STARTUP_TIMEOUT_SECONDS = 30;

  @Option(
      names = {"-f", "--foreground"},
      description = "Stay in the foreground.")
  boolean foreground;

  @Parameters(
      index = "0",
      paramLabel = "NAME",
      description = "Interface name (at most 15 characters).")
  String name;

  @Override
  public Integer call() throws Exception {
    if (name.isEmpty() || name.length() > 15 || name.contains("/")) {
      System.err.println(
          "trellis wg: interface name must be 1 to 15 characters without '/': '" + name + "'");
      return 1;
    }
    int mtu = mtuFromEnvironment();
    return foreground ? runForeground(mtu) : startInBackground();
  }

  private static int mtuFromEnvironment() {
    String value = System.getenv("TRELLIS_WG_MTU");
    if (value == null || value.isBlank()) {
      return TunDevice.DEFAULT_MTU;
    }
    try {
      return Integer.parseInt(value.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("TRELLIS_WG_MTU must be a number, got '" + value + "'");
    }
  }

  private int runForeground(int mtu) throws InterruptedException {
    NodeLogging.configure("warn");
    Timing timing;
    Offloads offloads;
    try {
      timing = Timing.fromEnvironment();
      offloads = Offloads.fromEnvironment();
    } catch (IllegalArgumentException e) {
      System.err.println("trellis wg: " + e.getMessage());
      return 1;
    }
    TunDevice tun;
    try {
      tun = TunDevice.open(name, mtu, offloads.tun());
    } catch (IOException e) {
      System.err.println("trellis wg: cannot create TUN device " + name + ": " + e.getMessage());
      return 1;
    }
    Device device = new Device(tun, timing, offloads);
    UapiServer uapi;
    try {
      device.start();
      uapi = UapiServer.start(device, tun.name());
    } catch (IOException e) {
      System.err.println("trellis wg: " + e.getMessage());
      device.close();
      return 1;
    }
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  uapi.close();
                  device.close();
                },
                "trellis-wg-shutdown"));
    LoggerFactory.getLogger(WgCommand.class)
        .info("interface " + tun.name() + " is up; UAPI at " + uapi.path());
    device.awaitClosed();
    uapi.close();
    return 0;
  }

  /** Starts this same program with -f in a new session and waits for its control socket. */
  private int startInBackground() throws IOException, InterruptedException {
    // The runtime's own java, not this process's executable: under a packaged launcher
    // (trellis-wg from the .deb) that is the launcher, which would take the JVM flags as arguments.
    Path runtimeJava = Path.of(System.getProperty("java.home"), "bin", "java");
    String java =
        Files.isExecutable(runtimeJava)
            ? runtimeJava.toString()
            : ProcessHandle.current().info().command().orElse(runtimeJava.toString());
    List<String> command = new ArrayList<>(List.of("setsid", java));
    command.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
    command.addAll(
        List.of(
            "-cp",
            System.getProperty("java.class.path"),
            TrellisNode.class.getName(),
            "wg",
            "-f",
            name));
    File log =
        new File(
            System.getenv().getOrDefault("TRELLIS_WG_LOG", "/tmp/trellis-wg-" + name + ".log"));
    Process child =
        new ProcessBuilder(command)
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .redirectOutput(ProcessBuilder.Redirect.to(log))
            .redirectErrorStream(true)
            .start();
    Path socket = UapiServer.socketPath(name);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(STARTUP_TIMEOUT_SECONDS);
    while (System.nanoTime() < deadline) {
      if (!child.isAlive()) {
        System.err.print(Files.readString(log.toPath()));
        System.err.println(
            "trellis wg: the interface daemon exited with status " + child.exitValue());
        return 1;
      }
      if (Files.exists(socket) && accepts(socket)) {
        return 0;
      }
      child.waitFor(20, TimeUnit.MILLISECONDS);
    }
    child.destroy();
    System.err.println(
        "trellis wg: the interface daemon did not come up within "
            + STARTUP_TIMEOUT_SECONDS
            + " s; see "
            + log);
    return 1;
  }

  private static boolean accepts(Path socket) {
    try (SocketChannel ignored = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
