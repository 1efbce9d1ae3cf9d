package dev.trellis.system.campus;

import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.Commands;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Ping;
import dev.trellis.system.netns.Tools;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * tinc 1.0 with {@code TCPOnly}, its hub on the server host: the relayed overlay the campus
 * benchmark compares Trellis's relay with (the guide's reference; unlike Trellis's relay, tinc's
 * hub decrypts and sees every packet). Each host's tincd connects to the hub over TCP port {@link
 * #PORT}, which the testbed lets through like 8080; the overlay is {@code 10.99.0.0/24}. The
 * daemons are the testbed's tracked processes (ended with it); the configuration lives in a
 * temporary directory deleted on {@link #close}.
 */
final class TincOverlay implements AutoCloseable {
  static final int PORT = 655;
  private static final String PREFIX = "10.99.0.";
  private static final String HUB = "hub";
  private static final Duration UP_TIMEOUT = Duration.ofSeconds(30);

  private final Path dir;
  private final String tincd;
  private final NetworkNamespace serverNamespace;
  private final List<TrellisAgentProcess> hosts;
  private final Map<TrellisAgentProcess, String> addresses = new LinkedHashMap<>();
  private final List<HostProcess> daemons = new ArrayList<>();

  private TincOverlay(
      Path dir, String tincd, NetworkNamespace serverNamespace, List<TrellisAgentProcess> hosts) {
    this.dir = dir;
    this.tincd = tincd;
    this.serverNamespace = serverNamespace;
    this.hosts = List.copyOf(hosts);
  }

  /**
   * The hub on the campus's server host and one node per host, configured with their keys but not
   * running: {@link #up} starts them.
   */
  static TincOverlay create(CampusTestbed campus, List<TrellisAgentProcess> hosts) {
    campus.allowTcpToServer(PORT);
    try {
      TincOverlay tinc =
          new TincOverlay(
              Files.createTempDirectory("trellis-tinc-"),
              Tools.require("tincd"),
              campus.server().namespace(),
              hosts);
      Map<String, String> nodes = new LinkedHashMap<>();
      nodes.put(HUB, PREFIX + "100");
      for (int i = 0; i < hosts.size(); i++) {
        nodes.put("n" + i, PREFIX + (i + 1));
        tinc.addresses.put(hosts.get(i), PREFIX + (i + 1));
      }
      for (var node : nodes.entrySet()) {
        tinc.configure(node.getKey(), node.getValue());
      }
      // Every node knows every host file (the public keys, the hub's address).
      for (String from : nodes.keySet()) {
        for (String to : nodes.keySet()) {
          if (!from.equals(to)) {
            Files.copy(
                tinc.dir.resolve(to).resolve("hosts").resolve(to),
                tinc.dir.resolve(from).resolve("hosts").resolve(to));
          }
        }
      }
      return tinc;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Starts the hub and the nodes and waits until the first host reaches every other over tinc. Only
   * while measuring tinc: with tinc up, the Trellis agents find each other's tinc addresses among
   * their endpoints and take a "direct" path through tinc's TCP.
   */
  void up() {
    daemons.add(run(serverNamespace, HUB));
    for (int i = 0; i < hosts.size(); i++) {
      daemons.add(run(hosts.get(i).namespace(), "n" + i));
    }
    TrellisAgentProcess first = hosts.getFirst();
    for (TrellisAgentProcess other : hosts.subList(1, hosts.size())) {
      String target = address(other);
      Await.until(
          "tinc from " + first.hostname() + " to " + other.hostname(),
          UP_TIMEOUT,
          () -> Ping.ping(first.namespace(), target, 1, 1, null, "0.2").allReplied());
    }
  }

  /** Stops every daemon (their interfaces go with them). */
  void down() {
    for (HostProcess d : daemons) {
      d.stop();
    }
    daemons.clear();
  }

  /** The host's address on the tinc overlay. */
  String address(TrellisAgentProcess host) {
    return addresses.get(host);
  }

  /**
   * A node's directory: tinc.conf, its key pair, its host file, the script that sets the address.
   */
  private void configure(String name, String address) throws IOException {
    Path conf = dir.resolve(name);
    Files.createDirectories(conf.resolve("hosts"));
    StringBuilder main =
        new StringBuilder("Name = " + name + "\nInterface = tinc0\nTCPOnly = yes\n");
    StringBuilder host = new StringBuilder("Subnet = " + address + "/32\nTCPOnly = yes\n");
    if (name.equals(HUB)) {
      main.append("Port = ").append(PORT).append('\n');
      host.append("Address = ")
          .append(CampusTestbed.SERVER_ADDRESS)
          .append("\nPort = ")
          .append(PORT)
          .append('\n');
    } else {
      main.append("ConnectTo = ").append(HUB).append('\n');
    }
    Files.writeString(conf.resolve("tinc.conf"), main);
    Files.writeString(conf.resolve("hosts").resolve(name), host);
    Path up = conf.resolve("tinc-up");
    Files.writeString(
        up,
        "#!/bin/sh\nip addr add "
            + address
            + "/24 dev \"$INTERFACE\"\nip link set \"$INTERFACE\" up\n");
    Files.setPosixFilePermissions(up, PosixFilePermissions.fromString("rwx------"));
    // Appends the public key to hosts/NAME; no prompt when stdin is not a terminal.
    CommandResult keys =
        Commands.run(
            List.of(tincd, "-c", conf.toString(), "-K2048"), Map.of(), "", Duration.ofSeconds(60));
    if (keys.exitCode() != 0) {
      throw new IllegalStateException("tincd -K failed for " + name + ":\n" + keys.stderr());
    }
  }

  private HostProcess run(NetworkNamespace ns, String name) {
    Path conf = dir.resolve(name);
    return ns.start(
        "tincd-" + name,
        Map.of(),
        tincd,
        "-c",
        conf.toString(),
        "-D",
        "--pidfile=" + conf.resolve("pid"),
        "--logfile=" + conf.resolve("log"));
  }

  @Override
  public void close() {
    down();
    try (var files = Files.walk(dir)) {
      for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      // left in /tmp: only configuration and throwaway keys
    }
  }
}
