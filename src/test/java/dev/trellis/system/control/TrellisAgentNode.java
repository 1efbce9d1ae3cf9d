package dev.trellis.system.control;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.dataplane.agent.AgentState;
import dev.trellis.dataplane.agent.LocalApiClient;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Tools;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One machine running {@code trellis agent} in its own namespace, driven with the trellis command
 * ({@code up}, {@code status --json}, {@code ip}) run in that namespace. {@link #statusNow()} asks the agent's
 * local API directly from the test JVM (the same JSON as {@code status --json}, without starting a JVM), for
 * fine-grained timing.
 */
final class TrellisAgentNode {
    static final Duration START_TIMEOUT = Duration.ofSeconds(60);
    static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(60);

    private final ControlLab lab;
    private final NetworkNamespace ns;
    private final String hostname;
    private final String underlay;
    private final Path stateDir;
    private final String interfaceName;
    private volatile HostProcess process;

    TrellisAgentNode(ControlLab lab, NetworkNamespace ns, String hostname, String underlay, Path stateDir, String interfaceName) {
        this.lab = lab;
        this.ns = ns;
        this.hostname = hostname;
        this.underlay = underlay;
        this.stateDir = stateDir;
        this.interfaceName = interfaceName;
    }

    NetworkNamespace namespace() {
        return ns;
    }

    String hostname() {
        return hostname;
    }

    String interfaceName() {
        return interfaceName;
    }

    HostProcess process() {
        return process;
    }

    /** Starts {@code trellis agent} and waits until its local API answers. */
    void start() {
        HostProcess p = ns.start("trellis-agent-" + hostname, Map.of(), lab.launcherPath(), "agent",
                "--state-dir", stateDir.toString(), "--interface", interfaceName);
        process = p;
        Await.until("trellis agent " + hostname + " answering on its local API", START_TIMEOUT, () -> {
            if (!p.isAlive()) {
                throw new AssertionError("trellis agent " + hostname + " exited early:\n" + ControlLab.tail(p.output(), 60));
            }
            try {
                statusNow();
                return true;
            } catch (UncheckedIOException e) {
                return false;
            }
        });
    }

    /** SIGTERM (then SIGKILL after a grace period) if running. */
    void stop() {
        HostProcess p = process;
        if (p != null && p.isAlive() && p.terminate(Duration.ofSeconds(10)).isEmpty()) {
            p.stop();
        }
    }

    /** {@code trellis up --login-server URL --authkey KEY --hostname NAME}; throws unless it exits 0; returns stdout. */
    String up(String loginServer, String authKey) {
        return trellis("up", "--state-dir", stateDir.toString(), "--login-server", loginServer, "--authkey", authKey,
                "--hostname", hostname).orThrow().stdout().strip();
    }

    /** {@code trellis status --json}. */
    JsonNode status() {
        return parse(trellis("status", "--state-dir", stateDir.toString(), "--json").orThrow().stdout());
    }

    /** The agent's status straight from its local API (what {@code status --json} prints, plus "ok"). */
    JsonNode statusNow() {
        LocalApiClient client = new LocalApiClient(AgentState.socketPath(stateDir));
        try {
            ObjectNode reply = (ObjectNode) client.call(client.newRequest("status"), Duration.ofSeconds(5));
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
    String ip4() {
        return trellis("ip", "-4", "--state-dir", stateDir.toString()).orThrow().stdout().strip();
    }

    /** Public keys of the peers on the agent's WireGuard interface ({@code wg show IFACE peers}). */
    List<String> wgPeers() {
        return ns.exec(Tools.wg(), "show", interfaceName, "peers").stdout().lines().map(String::strip)
                .filter(s -> !s.isEmpty()).toList();
    }

    CommandResult trellis(String... args) {
        return lab.trellis(ns, COMMAND_TIMEOUT, args);
    }

    // ---- reading status JSON --------------------------------------------------------------------

    static JsonNode parse(String json) {
        try {
            return ControlJson.MAPPER.readTree(json);
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + json, e);
        }
    }

    /** The peer with this hostname in a status, or null. */
    static JsonNode peer(JsonNode status, String hostname) {
        for (JsonNode p : status.path("peers")) {
            if (hostname.equals(p.path("hostname").asText())) {
                return p;
            }
        }
        return null;
    }

    static List<String> addresses(JsonNode node) {
        List<String> out = new ArrayList<>();
        node.path("addresses").forEach(a -> out.add(a.asText()));
        return out;
    }

    static String ipv4(JsonNode node) {
        return addresses(node).stream().filter(a -> !a.contains(":")).findFirst()
                .orElseThrow(() -> new AssertionError("no IPv4 address in " + node));
    }

    static String ipv6(JsonNode node) {
        return addresses(node).stream().filter(a -> a.contains(":")).findFirst()
                .orElseThrow(() -> new AssertionError("no IPv6 address in " + node));
    }

    /** Connected to the server, self online, and {@code peerHostname} in the map and online. */
    static boolean connectedWithPeerOnline(JsonNode status, String peerHostname) {
        JsonNode peer = peer(status, peerHostname);
        return "Running".equals(status.path("backendState").asText()) && status.path("connected").asBoolean()
                && status.path("self").path("online").asBoolean() && peer != null && peer.path("online").asBoolean();
    }

    void dumpDiagnostics(PrintStream out) {
        HostProcess p = process;
        out.println("--- agent " + hostname + " in " + ns + " (" + underlay + ", interface " + interfaceName + ")");
        if (p == null) {
            out.println("(not started)");
            return;
        }
        out.println("process " + p + " alive=" + p.isAlive() + " log " + p.log() + " (tail):");
        out.println(ControlLab.tail(p.output(), 60));
        if (p.isAlive()) {
            try {
                out.println("status: " + ControlJson.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(statusNow()));
            } catch (IOException | RuntimeException e) {
                out.println("status failed: " + e);
            }
            CommandResult wg = ns.run(Tools.wg(), "show", interfaceName);
            out.println("wg show " + interfaceName + ":\n" + (wg.stdout() + wg.stderr()).strip());
            out.println("routes:\n" + ns.run(Tools.ip(), "route").stdout().strip() + "\n"
                    + ns.run(Tools.ip(), "-6", "route").stdout().strip());
        }
    }

    @Override
    public String toString() {
        return "agent " + hostname + " in " + ns;
    }
}
