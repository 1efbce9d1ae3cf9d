package dev.trellis.system.control;

import dev.trellis.system.harness.TestEnv;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisServerProcess;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.Commands;
import dev.trellis.system.netns.Netns;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Tools;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A Trellis network in network namespaces: a "lan" namespace with bridge {@code br0}, and one
 * namespace per machine (the server's, each agent's) attached to the bridge by a veth, underlay
 * {@code 198.18.N.0/24} with a random N. One more veth joins the bridge from the root namespace
 * ({@code 198.18.N.250}) so the test JVM itself can speak HTTP and WebSocket to the server.
 * Everything else stays inside our namespaces.
 *
 * <p>Servers and agents are the harness's ({@link TestEnv}): their PIDs are tracked, a failing test
 * prints them, and {@link #close()} stops them (SIGTERM first) and removes the namespaces.
 */
final class ControlLab implements AutoCloseable {
  static final int SERVER_HOST = 1;
  static final int ROOT_HOST = 250;
  private static final SecureRandom RANDOM = new SecureRandom();

  private final TestEnv env;
  private final Netns bed;
  private final int subnet;
  private final NetworkNamespace lan;
  private final TrellisServerProcess server;
  private final AtomicInteger nextAgentHost = new AtomicInteger(10);

  private ControlLab(int subnet) {
    this.subnet = subnet;
    env = TestEnv.create("trellis control lab (underlay 198.18." + subnet + ".0/24)");
    bed = env.bed();
    try {
      lan = bed.newNamespace("lan");
      lan.exec(Tools.ip(), "link", "add", "br0", "type", "bridge");
      lan.exec(Tools.ip(), "link", "set", "br0", "up");
      String hostLink = Netns.uniqueIfName("trh");
      bed.vethToHost(hostLink, lan, "p-host");
      lan.exec(Tools.ip(), "link", "set", "p-host", "master", "br0");
      Netns.addHostAddress(hostLink, underlay(ROOT_HOST) + "/24");
      server = env.newServer(attach("srv", SERVER_HOST), "srv", underlay(SERVER_HOST));
      // The root namespace reaches the server's namespace across the bridge.
      Await.until(
          "the root namespace reaching " + server.address() + " over the lab bridge",
          Duration.ofSeconds(10),
          () ->
              Commands.run(
                      List.of(Tools.require("ping"), "-n", "-c", "1", "-W", "1", server.address()),
                      Map.of(),
                      null,
                      Duration.ofSeconds(5))
                  .ok());
    } catch (RuntimeException | Error e) {
      env.close();
      throw e;
    }
  }

  /** A new lab with the server's namespace ready (not started). Skips visibly without root. */
  static ControlLab create() {
    return new ControlLab(freeSubnet());
  }

  /**
   * A 198.18.N.0/24 no route in the root namespace uses yet (N random, so concurrent runs rarely
   * meet).
   */
  private static int freeSubnet() {
    String routes =
        Commands.check(List.of(Tools.ip(), "-4", "route", "show", "table", "all")).stdout();
    for (int attempt = 0; attempt < 50; attempt++) {
      int n = 64 + RANDOM.nextInt(180);
      if (!routes.contains("198.18." + n + ".")) {
        return n;
      }
    }
    throw new IllegalStateException("no free 198.18.N.0/24 subnet in the root namespace's routes");
  }

  String underlay(int host) {
    return "198.18." + subnet + "." + host;
  }

  /**
   * A new namespace {@code suffix} on the lab bridge with underlay address {@code 198.18.N.host/24}
   * on eth0.
   */
  NetworkNamespace attach(String suffix, int host) {
    NetworkNamespace ns = bed.newNamespace(suffix);
    String port = "p-" + suffix;
    bed.veth(lan, port, ns, "eth0");
    lan.exec(Tools.ip(), "link", "set", port, "master", "br0");
    Netns.addAddress(ns, "eth0", underlay(host) + "/24");
    return ns;
  }

  /** A new agent machine (namespace, state directory, unique interface name), not started yet. */
  TrellisAgentProcess newAgent(String suffix, String hostname) {
    int host = nextAgentHost.getAndIncrement();
    return env.newAgent(attach(suffix, host), hostname, underlay(host), "tra");
  }

  Netns bed() {
    return bed;
  }

  TrellisServerProcess server() {
    return server;
  }

  @Override
  public void close() {
    env.close();
  }
}
