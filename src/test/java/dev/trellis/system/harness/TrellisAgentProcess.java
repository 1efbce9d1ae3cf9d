package dev.trellis.system.harness;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.dataplane.agent.AgentState;
import dev.trellis.dataplane.agent.LocalApiClient;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.Commands;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Netns;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Tools;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One machine running {@code trellis agent} in its own namespace, driven with the trellis command
 * ({@code up}, {@code status --json}, {@code ip}, {@code ping}) run in that namespace. {@link
 * #statusNow()} asks the agent's local API directly from the test JVM (the same JSON as {@code
 * status --json}, without starting a JVM), for fine-grained timing and polling.
 */
public final class TrellisAgentProcess {
  public static final Duration START_TIMEOUT = Duration.ofSeconds(60);
  public static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(60);

  private final NetworkNamespace ns;
  private final String hostname;
  private final String address;
  private final Path stateDir;
  private final String interfaceName;
  private volatile HostProcess process;
  private volatile String overlay;

  /**
   * An agent for {@code hostname} at underlay {@code address} in {@code ns}, on a host-wide unique
   * interface.
   */
  public TrellisAgentProcess(
      NetworkNamespace ns, String hostname, String address, Path stateDir, String interfaceName) {
    this.ns = ns;
    this.hostname = hostname;
    this.address = address;
    this.stateDir = stateDir;
    this.interfaceName = interfaceName;
  }

  public NetworkNamespace namespace() {
    return ns;
  }

  public String hostname() {
    return hostname;
  }

  /** The underlay address of its machine. */
  public String address() {
    return address;
  }

  public Path stateDir() {
    return stateDir;
  }

  public String interfaceName() {
    return interfaceName;
  }

  public HostProcess process() {
    return process;
  }

  /** Starts {@code trellis agent} and waits until its local API answers. */
  public void start() {
    start(Map.of());
  }

  /**
   * {@code trellis agent} in the background, returning at once (as {@code trellis agent &} does);
   * {@link #start()} also waits until it answers.
   */
  public HostProcess launch() {
    HostProcess p =
        Trellis.start(
            ns,
            "trellis-agent-" + hostname,
            Map.of(),
            List.of("agent", "--state-dir", stateDir.toString(), "--interface", interfaceName));
    process = p;
    return p;
  }

  /** The same with extra environment (e.g. TRELLIS_HOME_RELAY). */
  public void start(Map<String, String> env) {
    HostProcess p =
        Trellis.start(
            ns,
            "trellis-agent-" + hostname,
            env,
            List.of("agent", "--state-dir", stateDir.toString(), "--interface", interfaceName));
    process = p;
    p.awaitReady(
        "trellis agent " + hostname + " answering on its local API",
        START_TIMEOUT,
        () -> {
          try {
            statusNow();
            return true;
          } catch (UncheckedIOException e) {
            return false;
          }
        });
  }

  /** SIGTERM (then SIGKILL after a grace period) if running. */
  public void stop() {
    HostProcess p = process;
    if (p != null && p.isAlive() && p.terminate(Duration.ofSeconds(10)).isEmpty()) {
      p.stop();
    }
  }

  /**
   * Teardown, after its namespace is gone: removes the wg socket a killed agent may have left;
   * never throws.
   */
  public void removeSocket() {
    try {
      Files.deleteIfExists(Netns.WIREGUARD_SOCKET_DIR.resolve(interfaceName + ".sock"));
    } catch (IOException e) {
      System.err.println("[harness] removing the wg socket of " + interfaceName + ": " + e);
    }
  }

  /**
   * {@code trellis up --login-server URL --authkey KEY --hostname NAME [MORE...]}; throws unless it
   * exits 0; returns stdout.
   */
  public String up(String loginServer, String authKey, String... more) {
    List<String> args =
        new java.util.ArrayList<>(
            List.of(
                "up",
                "--state-dir",
                stateDir.toString(),
                "--login-server",
                loginServer,
                "--authkey",
                authKey,
                "--hostname",
                hostname));
    args.addAll(List.of(more));
    return trellis(args.toArray(String[]::new)).orThrow().stdout().strip();
  }

  /** {@code trellis status --json}. */
  public JsonNode status() {
    return parse(
        trellis("status", "--state-dir", stateDir.toString(), "--json").orThrow().stdout());
  }

  /**
   * The agent's status straight from its local API (what {@code status --json} prints, plus "ok").
   */
  public JsonNode statusNow() {
    LocalApiClient client = new LocalApiClient(AgentState.socketPath(stateDir));
    try {
      ObjectNode reply =
          (ObjectNode) client.call(client.newRequest("status"), Duration.ofSeconds(5));
      if (!reply.path("ok").asBoolean()) {
        throw new IllegalStateException("agent " + hostname + " refused status: " + reply);
      }
      reply.remove("ok");
      return reply;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** {@code trellis ip -4}. */
  public String ip4() {
    return trellis("ip", "-4", "--state-dir", stateDir.toString()).orThrow().stdout().strip();
  }

  /** The agent's own IPv4 overlay address ({@code trellis ip -4}), asked once. */
  public String overlay() {
    if (overlay == null) {
      overlay = ip4();
    }
    return overlay;
  }

  /**
   * {@code trellis ping -c COUNT PEER}, parsed; never throws on failure (see {@link
   * TrellisPing#answered()}).
   */
  public TrellisPing ping(String peer, int count) {
    return TrellisPing.parse(
        trellis("ping", "-c", Integer.toString(count), "--state-dir", stateDir.toString(), peer));
  }

  /** The peer entry for {@code peerHostname} in the current status (local API), or null. */
  public JsonNode peer(String peerHostname) {
    return peer(statusNow(), peerHostname);
  }

  /** "direct", "relay", or null if the peer is not (yet) in the map. */
  public String pathTo(TrellisAgentProcess other) {
    JsonNode p = peer(other.hostname);
    return p == null ? null : p.path("path").asText(null);
  }

  /** Public keys of the peers on the agent's WireGuard interface ({@code wg show IFACE peers}). */
  public List<String> wgPeers() {
    return ns.exec(Tools.wg(), "show", interfaceName, "peers")
        .stdout()
        .lines()
        .map(String::strip)
        .filter(s -> !s.isEmpty())
        .toList();
  }

  /** {@code trellis metrics}: the agent's metrics in Prometheus' text format. */
  public String metrics() {
    return trellis("metrics", "--state-dir", stateDir.toString()).orThrow().stdout();
  }

  /** {@code trellis ARGS...} in the agent's namespace; never throws on a non-zero exit. */
  public CommandResult trellis(String... args) {
    return Trellis.run(ns, COMMAND_TIMEOUT, args);
  }

  // ---- reading status JSON --------------------------------------------------------------------

  public static JsonNode parse(String json) {
    try {
      return ControlJson.MAPPER.readTree(json);
    } catch (IOException e) {
      throw new AssertionError("not JSON: " + json, e);
    }
  }

  /** The peer with this hostname in a status, or null. */
  public static JsonNode peer(JsonNode status, String hostname) {
    for (JsonNode p : status.path("peers")) {
      if (hostname.equals(p.path("hostname").asText())) {
        return p;
      }
    }
    return null;
  }

  public static List<String> addresses(JsonNode node) {
    List<String> out = new ArrayList<>();
    node.path("addresses").forEach(a -> out.add(a.asText()));
    return out;
  }

  public static String ipv4(JsonNode node) {
    return addresses(node).stream()
        .filter(a -> !a.contains(":"))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no IPv4 address in " + node));
  }

  public static String ipv6(JsonNode node) {
    return addresses(node).stream()
        .filter(a -> a.contains(":"))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no IPv6 address in " + node));
  }

  /** Connected to the server, self online, and {@code peerHostname} in the map and online. */
  public static boolean connectedWithPeerOnline(JsonNode status, String peerHostname) {
    JsonNode peer = peer(status, peerHostname);
    return "Running".equals(status.path("backendState").asText())
        && status.path("connected").asBoolean()
        && status.path("self").path("online").asBoolean()
        && peer != null
        && peer.path("online").asBoolean();
  }

  /** Log tail and, while it runs, status, {@code wg show} and routes. */
  public void dumpDiagnostics(PrintStream out) {
    HostProcess p = process;
    out.println("--- " + this + " (interface " + interfaceName + ")");
    if (p == null) {
      out.println("(not started)");
      return;
    }
    out.println("process " + p + " alive=" + p.isAlive() + " log " + p.log() + " (tail):");
    out.println(Commands.tail(p.output(), 60));
    if (p.isAlive()) {
      try {
        out.println("status: " + statusNow().toPrettyString());
      } catch (RuntimeException e) {
        out.println("status failed: " + e);
      }
      CommandResult wg = ns.run(Tools.wg(), "show", interfaceName);
      out.println("wg show " + interfaceName + ":\n" + (wg.stdout() + wg.stderr()).strip());
      out.println(
          "routes:\n"
              + ns.run(Tools.ip(), "route").stdout().strip()
              + "\n"
              + ns.run(Tools.ip(), "-6", "route").stdout().strip());
    }
  }

  @Override
  public String toString() {
    return "agent " + hostname + " (" + address + " in " + ns + ")";
  }
}
