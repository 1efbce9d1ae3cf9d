package dev.trellis.system.control;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.control.server.LocalAdminAccess;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.NetworkNamespace;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.CopyOnWriteArrayList;

/** {@code trellis server} in its own namespace, with the admin commands run next to it (they find cli.json). */
final class TrellisServerNode {
    static final Duration START_TIMEOUT = Duration.ofSeconds(90);
    static final Duration ADMIN_TIMEOUT = Duration.ofSeconds(60);
    /** Fields of `nodes list --json` that change with presence, not with state. */
    private static final List<String> PRESENCE_FIELDS = List.of("online", "lastSeen", "endpoints");

    private final ControlLab lab;
    private final NetworkNamespace ns;
    private final String address;
    private final Path dataDir;
    private final List<HostProcess> runs = new CopyOnWriteArrayList<>();
    private volatile HostProcess process;

    TrellisServerNode(ControlLab lab, NetworkNamespace ns, String address, Path dataDir) {
        this.lab = lab;
        this.ns = ns;
        this.address = address;
        this.dataDir = dataDir;
    }

    NetworkNamespace namespace() {
        return ns;
    }

    String address() {
        return address;
    }

    /** The login server URL for agents (and for the test JVM, through the root namespace's veth). */
    String url() {
        return "http://" + address + ":" + ControlLab.SERVER_PORT;
    }

    Path dataDir() {
        return dataDir;
    }

    boolean running() {
        HostProcess p = process;
        return p != null && p.isAlive();
    }

    HostProcess process() {
        return process;
    }

    /** Starts the server on {@link #dataDir()} and waits for "trellis server listening on". */
    void start() {
        if (running()) {
            throw new IllegalStateException("server already running: " + process);
        }
        HostProcess p = ns.start("trellis-server-" + (runs.size() + 1), Map.of(), lab.launcherPath(), "server",
                "--data-dir", dataDir.toString(), "--listen", "0.0.0.0:" + ControlLab.SERVER_PORT);
        runs.add(p);
        process = p;
        Await.until("trellis server listening (" + p + ")", START_TIMEOUT, () -> {
            if (!p.isAlive()) {
                throw new AssertionError("trellis server exited early:\n" + ControlLab.tail(p.output(), 60));
            }
            return p.output().contains("trellis server listening on");
        });
    }

    /** SIGTERM to the server's PID; waits for it to exit and returns its exit status. Nothing if not running. */
    OptionalInt stop(Duration grace) {
        HostProcess p = process;
        if (p == null || !p.isAlive()) {
            return OptionalInt.empty();
        }
        OptionalInt exit = p.terminate(grace);
        if (exit.isEmpty()) {
            p.stop(); // SIGKILL after the harness's grace period
            throw new AssertionError("trellis server did not exit within " + grace.toSeconds() + " s of SIGTERM:\n"
                    + ControlLab.tail(p.output(), 40));
        }
        return exit;
    }

    /** {@code trellis GROUP VERB --data-dir DIR ARGS...} in the server's namespace; never throws on failure. */
    CommandResult admin(String group, String verb, String... args) {
        String[] argv = new String[args.length + 4];
        argv[0] = group;
        argv[1] = verb;
        argv[2] = "--data-dir";
        argv[3] = dataDir.toString();
        System.arraycopy(args, 0, argv, 4, args.length);
        return lab.trellis(ns, ADMIN_TIMEOUT, argv);
    }

    /** Creates a reusable auth key for {@code user}; returns the key (the last line of stdout). */
    String createReusableAuthKey(String user) {
        List<String> lines = admin("authkeys", "create", "--user", user, "--reusable").orThrow().stdout().strip().lines().toList();
        return lines.getLast().strip();
    }

    /** `trellis nodes list --json`. */
    ArrayNode nodes() {
        return array(admin("nodes", "list", "--json").orThrow().stdout());
    }

    /** `trellis users list --json`. */
    ArrayNode users() {
        return array(admin("users", "list", "--json").orThrow().stdout());
    }

    /** `trellis authkeys list --json`. */
    ArrayNode authKeys() {
        return array(admin("authkeys", "list", "--json").orThrow().stdout());
    }

    /** The nodes list without presence (online, lastSeen, endpoints), sorted by id: what must survive restarts. */
    List<JsonNode> nodeState() {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode n : nodes()) {
            ObjectNode copy = ((ObjectNode) n).deepCopy();
            PRESENCE_FIELDS.forEach(copy::remove);
            out.add(copy);
        }
        out.sort(Comparator.comparingLong(n -> n.path("id").asLong()));
        return out;
    }

    /** The node with this hostname in `nodes list --json`, or null. */
    JsonNode node(String hostname) {
        for (JsonNode n : nodes()) {
            if (hostname.equals(n.path("hostname").asText())) {
                return n;
            }
        }
        return null;
    }

    /** URL and API key the server wrote to its data directory's cli.json. */
    LocalAdminAccess.Access access() {
        try {
            LocalAdminAccess.Access access = LocalAdminAccess.read(dataDir);
            if (access == null) {
                throw new AssertionError("no " + LocalAdminAccess.FILE + " in " + dataDir);
            }
            return access;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static ArrayNode array(String json) {
        try {
            JsonNode node = ControlJson.MAPPER.readTree(json);
            if (!(node instanceof ArrayNode a)) {
                throw new AssertionError("expected a JSON array, got: " + json);
            }
            return a;
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + json, e);
        }
    }

    void dumpDiagnostics(PrintStream out) {
        for (HostProcess p : runs) {
            out.println("--- " + p + " alive=" + p.isAlive() + " log " + p.log() + " (tail):");
            out.println(ControlLab.tail(p.output(), 80));
        }
        if (running()) {
            CommandResult nodes = admin("nodes", "list");
            out.println("--- trellis nodes list (exit " + nodes.exitCode() + "):");
            out.println((nodes.stdout() + nodes.stderr()).strip());
        }
    }

    @Override
    public String toString() {
        return "trellis server " + url() + " in " + ns;
    }
}
