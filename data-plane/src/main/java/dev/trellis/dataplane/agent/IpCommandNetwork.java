package dev.trellis.dataplane.agent;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Configures the interface with iproute2's `ip` (needs CAP_NET_ADMIN). Called on the agent's loop
 * thread; synchronized for the shutdown hook's {@link #clear}.
 */
public final class IpCommandNetwork implements NetworkConfigurator {
  private static final Logger LOG = LoggerFactory.getLogger(IpCommandNetwork.class);

  private final String interfaceName;
  private final Set<String> addresses = new LinkedHashSet<>();
  private final Set<String> routes = new LinkedHashSet<>();
  private boolean ipv6OffLogged;

  public IpCommandNetwork(String interfaceName) {
    this.interfaceName = interfaceName;
  }

  /**
   * Applies every address and route it can: one that fails is reported and the rest still go in, so
   * a host with IPv6 disabled (common on lab machines) gets full IPv4 service. IPv6 entries are
   * skipped, with one log line, when IPv6 is off on the interface.
   */
  @Override
  public synchronized void apply(List<InetAddress> wanted, List<String> wantedRoutes)
      throws IOException {
    boolean wantsIpv6 =
        wanted.stream().anyMatch(a -> !(a instanceof Inet4Address))
            || wantedRoutes.stream().anyMatch(r -> r.contains(":"));
    boolean ipv6 = wantsIpv6 && ipv6Enabled();
    List<String> failures = new ArrayList<>();
    Set<String> nextAddresses = new LinkedHashSet<>();
    for (InetAddress a : wanted) {
      nextAddresses.add(Endpoints.address(a) + (a instanceof Inet4Address ? "/32" : "/128"));
    }
    for (String old : new ArrayList<>(addresses)) {
      if (!nextAddresses.contains(old)) {
        runQuietly("ip", "addr", "del", old, "dev", interfaceName);
        addresses.remove(old);
      }
    }
    for (String address : nextAddresses) {
      boolean v6 = address.contains(":");
      if (v6 && !ipv6) {
        continue;
      }
      attempt(
          failures,
          v6
              ? List.of("ip", "-6", "addr", "replace", address, "dev", interfaceName)
              : List.of("ip", "addr", "replace", address, "dev", interfaceName),
          () -> addresses.add(address));
    }
    attempt(failures, List.of("ip", "link", "set", interfaceName, "up"), () -> {});
    Set<String> nextRoutes = new LinkedHashSet<>(wantedRoutes);
    for (String old : new ArrayList<>(routes)) {
      if (!nextRoutes.contains(old)) {
        runQuietly(routeCommand("del", old));
        routes.remove(old);
      }
    }
    for (String route : nextRoutes) {
      boolean v6 = route.contains(":");
      if (v6 && !ipv6) {
        continue;
      }
      attempt(failures, List.of(routeCommand("replace", route)), () -> routes.add(route));
    }
    if (!failures.isEmpty()) {
      throw new IOException(String.join("; ", failures));
    }
  }

  /**
   * {@code ip [-6] route VERB PREFIX [metric N] dev IF}: a route is a prefix, optionally followed
   * by its metric ("224.0.0.0/4 metric 2000").
   */
  private String[] routeCommand(String verb, String route) {
    List<String> argv = new ArrayList<>(List.of("ip"));
    if (route.contains(":")) argv.add("-6");
    argv.addAll(List.of("route", verb));
    argv.addAll(List.of(route.strip().split("\\s+")));
    argv.addAll(List.of("dev", interfaceName));
    return argv.toArray(String[]::new);
  }

  /** Runs one step; a failure is collected (and logged) instead of stopping the steps after it. */
  private static void attempt(List<String> failures, List<String> command, Runnable onSuccess) {
    try {
      run(command);
      onSuccess.run();
    } catch (IOException e) {
      failures.add(e.getMessage()); // logged once, all together, by the agent
    }
  }

  /** Whether the interface can carry IPv6; says so once when it cannot. */
  private boolean ipv6Enabled() {
    Path flag = Path.of("/proc/sys/net/ipv6/conf", interfaceName, "disable_ipv6");
    boolean on;
    try {
      on = Files.readString(flag).strip().equals("0");
    } catch (IOException | RuntimeException e) {
      on = false; // no IPv6 in this kernel at all
    }
    if (!on && !ipv6OffLogged) {
      ipv6OffLogged = true;
      LOG.info(
          "IPv6 is off on "
              + interfaceName
              + " ("
              + flag
              + "): overlay IPv6 addresses and routes skipped, IPv4 only");
    } else if (on) {
      ipv6OffLogged = false;
    }
    return on;
  }

  @Override
  public synchronized void clear() {
    for (String route : routes) {
      runQuietly(routeCommand("del", route));
    }
    routes.clear();
    for (String address : addresses) {
      runQuietly("ip", "addr", "del", address, "dev", interfaceName);
    }
    addresses.clear();
  }

  private void runQuietly(String... command) {
    try {
      run(List.of(command));
    } catch (IOException e) {
      LOG.debug(e.getMessage());
    }
  }

  private static void run(List<String> command) throws IOException {
    Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
    try {
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        throw new IOException(String.join(" ", command) + ": no answer within 10 s");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      process.destroyForcibly();
      throw new IOException(String.join(" ", command) + ": interrupted");
    }
    if (process.exitValue() != 0) {
      String output =
          new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
      throw new IOException(
          String.join(" ", command) + " failed (" + process.exitValue() + "): " + output);
    }
  }
}
