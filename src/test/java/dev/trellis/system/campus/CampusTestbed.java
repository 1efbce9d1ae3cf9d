package dev.trellis.system.campus;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.dataplane.agent.AgentState;
import dev.trellis.dataplane.agent.LocalApiClient;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Netns;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Prerequisites;
import dev.trellis.system.netns.Tools;
import dev.trellis.system.netns.WgImpl;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The reference campus in network namespaces. A router namespace ({@code ip_forward=1}) joins, with one veth per
 * host (host address {@code /32}, default route via the network's gateway address on the router's end):
 * <ul>
 *   <li>the server network {@code 198.18.10.0/24}: {@code trellis server} (HTTP, WebSocket relay on 8080, STUN 3478);</li>
 *   <li>the lab network {@code 198.18.20.0/24}: UDP allowed among lab hosts and to the server, no NAT;</li>
 *   <li>campus networks {@code 198.18.(30+k).0/24}, one per campus host: NAT (MASQUERADE for the subnet), only
 *       TCP to the server's port 8080 (and replies) leaves; all UDP dropped.</li>
 * </ul>
 * Router FORWARD policy is DROP: first every host's own chain ({@code z-HOST}: in the campus zone it drops all UDP
 * from or to the host, in the lab zone it is empty), then established/related, TCP to server:8080, and UDP (which by
 * then can only be between lab-zone hosts and the server). Traffic between client networks is otherwise dropped.
 * In the nat table, a host's chain {@code n-HOST} is empty on campus (the subnet's MASQUERADE applies) and ACCEPTs in
 * the lab (no NAT). {@link #moveTo} flips both chains, so a host changes zone without changing its address and its
 * agent keeps running.
 *
 * <p>Everything stays inside our namespaces (no link to the root namespace), so fixed addresses never collide with
 * other runs; host-wide names (the agents' interfaces and their wg sockets) are random.
 */
public final class CampusTestbed implements AutoCloseable {
    public static final int SERVER_PORT = 8080;
    public static final String SERVER_ADDRESS = "198.18.10.2";
    static final String SERVER_GATEWAY = "198.18.10.1";
    static final String LAB_PREFIX = "198.18.20.";
    private static final Set<CampusTestbed> OPEN = ConcurrentHashMap.newKeySet();

    /** LAB and CAMPUS as described above; OPEN lets everything to and from the host through, un-NATed (the "raw" baseline). */
    public enum Zone { LAB, CAMPUS, OPEN }

    /**
     * An emulated campus link for every client host: {@code tbf} at {@code rateMbit} on both ends of its veth and,
     * when {@code oneWayDelayMicros > 0}, the {@code delayLine} program (an L2 bridge holding each frame that long,
     * {@code delayline IF_A IF_B MICROS}) in a namespace of its own between the host and the router. The server's
     * link is not shaped.
     */
    public record LinkShape(int rateMbit, int oneWayDelayMicros, Path delayLine) {
        public LinkShape {
            if (rateMbit <= 0 || oneWayDelayMicros < 0) {
                throw new IllegalArgumentException("rate must be positive and delay not negative");
            }
            if (oneWayDelayMicros > 0 && (delayLine == null || !Files.isExecutable(delayLine))) {
                throw new IllegalArgumentException("delay line program " + delayLine + " is missing or not executable");
            }
        }
    }

    private final Netns bed;
    private final NetworkNamespace router;
    private final Path launcher;
    private final Server server;
    private final List<Server> otherServers = new CopyOnWriteArrayList<>();
    private final List<Agent> agents = new CopyOnWriteArrayList<>();
    private final AtomicInteger nextLabHost = new AtomicInteger(10);
    private final AtomicInteger nextCampusNet = new AtomicInteger(31);
    private final LinkShape shape;
    private final List<HostProcess> delayLines = new CopyOnWriteArrayList<>();
    private final List<HostProcess> relays = new CopyOnWriteArrayList<>();

    private CampusTestbed(Netns bed, LinkShape shape) {
        this.bed = bed;
        this.shape = shape;
        this.launcher = launcher();
        OPEN.add(this);
        router = bed.newNamespace("rtr");
        router.exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
        ipt("-P", "FORWARD", "DROP");
        ipt("-N", "zones");
        ipt("-A", "FORWARD", "-j", "zones");
        ipt("-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
        ipt("-A", "FORWARD", "-p", "tcp", "-d", SERVER_ADDRESS, "--dport", Integer.toString(SERVER_PORT), "-j", "ACCEPT");
        // Only UDP between lab-zone hosts and the server gets this far: campus-zone hosts' UDP is dropped in "zones".
        ipt("-A", "FORWARD", "-p", "udp", "-j", "ACCEPT");
        NetworkNamespace srv = attach("srv", SERVER_ADDRESS, SERVER_GATEWAY, null);
        server = new Server(srv, bed.workDir().resolve("server-data"), SERVER_ADDRESS, "server");
    }

    /** A new campus (router and server namespace; server not started). Skips visibly without root. */
    public static CampusTestbed create() {
        return create(null);
    }

    /** What a test does on a campus; may throw anything, the testbed is dumped before it propagates. */
    @FunctionalInterface
    public interface Scenario {
        void run(CampusTestbed campus) throws Exception;
    }

    /** Builds a plain campus, runs {@code scenario} on it, prints the testbed's state if it fails, and tears it down. */
    public static void run(Scenario scenario) throws Exception {
        try (CampusTestbed campus = create()) {
            try {
                scenario.run(campus);
            } catch (Exception | Error e) {
                campus.dumpDiagnostics(System.out);
                throw e;
            }
        }
    }

    /** A new campus whose client links have {@code shape} (null: plain veths). */
    public static CampusTestbed create(LinkShape shape) {
        Prerequisites.check();
        Tools.require("iptables");
        if (shape != null) {
            Tools.require("tc");
        }
        Netns bed = Netns.create();
        try {
            return new CampusTestbed(bed, shape);
        } catch (RuntimeException | Error e) {
            OPEN.removeIf(c -> c.bed == bed);
            bed.close();
            throw e;
        }
    }

    static Set<CampusTestbed> open() {
        return Set.copyOf(OPEN);
    }

    private static Path launcher() {
        Path home = WgImpl.home();
        Path launcher = home.resolve("trellis");
        if (!Files.isExecutable(launcher)) {
            throw new AssertionError("Trellis launcher " + launcher + " is missing or not executable");
        }
        if (!Files.isRegularFile(home.resolve("control-plane/target/trellis.jar"))) {
            throw new AssertionError("control-plane/target/trellis.jar is missing: build Trellis first (" + home.resolve("build") + ")");
        }
        return launcher;
    }

    private void ipt(String... args) {
        String[] argv = new String[args.length + 2];
        argv[0] = Tools.require("iptables");
        argv[1] = "-w";
        System.arraycopy(args, 0, argv, 2, args.length);
        router.exec(argv);
    }

    /**
     * Namespace {@code suffix} with {@code address/32} on eth0, veth {@code r-suffix} on the router holding {@code gateway};
     * with a {@code shape}, rate-limited both ways and, with a delay, through a delay line in namespace {@code d-suffix}.
     */
    private NetworkNamespace attach(String suffix, String address, String gateway, LinkShape shape) {
        NetworkNamespace ns = bed.newNamespace(suffix);
        String port = "r-" + suffix;
        if (shape != null && shape.oneWayDelayMicros() > 0) {
            NetworkNamespace delay = bed.newNamespace("d-" + suffix);
            bed.veth(delay, "host", ns, "eth0");
            bed.veth(router, port, delay, "rtr");
            HostProcess line = delay.start("delayline-" + suffix, Map.of(), shape.delayLine().toString(), "host", "rtr",
                    Integer.toString(shape.oneWayDelayMicros()));
            delayLines.add(line);
            Await.until("delay line " + suffix + " running", Duration.ofSeconds(10), () -> {
                if (!line.isAlive()) {
                    throw new AssertionError("delay line exited:\n" + line.output());
                }
                return !line.output().isEmpty();
            });
        } else {
            bed.veth(router, port, ns, "eth0");
        }
        if (shape != null) {
            String rate = shape.rateMbit() + "mbit";
            router.exec(Tools.require("tc"), "qdisc", "add", "dev", port, "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "50ms");
            ns.exec(Tools.require("tc"), "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "50ms");
        }
        router.exec(Tools.ip(), "addr", "add", gateway + "/32", "dev", port);
        router.exec(Tools.ip(), "route", "add", address + "/32", "dev", port);
        ns.exec(Tools.ip(), "addr", "add", address + "/32", "dev", "eth0");
        ns.exec(Tools.ip(), "route", "add", gateway + "/32", "dev", "eth0");
        ns.exec(Tools.ip(), "route", "add", "default", "via", gateway);
        return ns;
    }

    /**
     * A host on the server network ({@code 198.18.10.N}) running {@code trellis relay} for {@code region}, reachable
     * from every zone on TCP port 8080 like the server; {@code apiKey} is an admin API key of the server.
     */
    public HostProcess startStandaloneRelay(String suffix, String address, String region, String apiKey) {
        NetworkNamespace ns = attach(suffix, address, SERVER_GATEWAY, null);
        ipt("-A", "FORWARD", "-p", "tcp", "-d", address, "--dport", Integer.toString(SERVER_PORT), "-j", "ACCEPT");
        Path keyFile = bed.writeSecret("relay-" + suffix + ".key", apiKey + "\n");
        HostProcess p = ns.start("trellis-relay-" + region, Map.of(), launcher.toString(), "relay", "--region", region,
                "--login-server", server.url(), "--api-key-file", keyFile.toString(), "--listen", "0.0.0.0:" + SERVER_PORT,
                "--data-dir", bed.workDir().resolve("relay-" + suffix).toString(), "--stun-port", "0");
        relays.add(p);
        Await.until("trellis relay " + region + " listening", Duration.ofSeconds(90), () -> {
            if (!p.isAlive()) {
                throw new AssertionError("trellis relay exited early:\n" + tail(p.output(), 60));
            }
            return p.output().contains("trellis relay listening on");
        });
        return p;
    }

    /**
     * Another host on the server network ({@code 198.18.10.N}) for a {@code trellis server} of its own (not started):
     * reachable from every zone on TCP port 8080 like the first, and on any TCP port from the other server-network
     * hosts (cluster, relay mesh, PostgreSQL).
     */
    public Server newServerHost(String suffix, String address) {
        NetworkNamespace ns = attach(suffix, address, SERVER_GATEWAY, null);
        ipt("-A", "FORWARD", "-p", "tcp", "-d", address, "--dport", Integer.toString(SERVER_PORT), "-j", "ACCEPT");
        if (otherServers.isEmpty()) {
            ipt("-A", "FORWARD", "-p", "tcp", "-s", SERVER_GATEWAY.replaceAll("\\.1$", ".0/24"),
                    "-d", SERVER_GATEWAY.replaceAll("\\.1$", ".0/24"), "-j", "ACCEPT");
        }
        Server s = new Server(ns, bed.workDir().resolve("server-data-" + suffix), address, suffix);
        otherServers.add(s);
        return s;
    }

    /**
     * Cuts a server-network host off from every other host (both ways, in the router), or ({@code cut = false})
     * lets it back in; connections in flight stop getting packets too.
     */
    public void isolate(Server s, boolean cut) {
        String verb = cut ? "-I" : "-D";
        if (cut) {
            ipt(verb, "FORWARD", "1", "-s", s.address, "-j", "DROP");
            ipt(verb, "FORWARD", "1", "-d", s.address, "-j", "DROP");
        } else {
            ipt(verb, "FORWARD", "-s", s.address, "-j", "DROP");
            ipt(verb, "FORWARD", "-d", s.address, "-j", "DROP");
        }
    }

    /** A lab host (198.18.20.N) with an agent, not started. */
    public Agent newLabAgent(String suffix, String hostname) {
        String address = LAB_PREFIX + nextLabHost.getAndIncrement();
        return newAgent(suffix, hostname, address, LAB_PREFIX + "1", Zone.LAB);
    }

    /** A campus host alone on its own campus network 198.18.(30+k).10/24, behind NAT, with an agent, not started. */
    public Agent newCampusAgent(String suffix, String hostname) {
        int net = nextCampusNet.getAndIncrement();
        String prefix = "198.18." + net + ".";
        ipt("-t", "nat", "-A", "POSTROUTING", "-s", prefix + "0/24", "-j", "MASQUERADE");
        return newAgent(suffix, hostname, prefix + "10", prefix + "1", Zone.CAMPUS);
    }

    private Agent newAgent(String suffix, String hostname, String address, String gateway, Zone zone) {
        NetworkNamespace ns = attach(suffix, address, gateway, shape);
        String chain = "z-" + suffix;
        String natChain = "n-" + suffix;
        ipt("-N", chain);
        ipt("-A", "zones", "-s", address, "-j", chain);
        ipt("-A", "zones", "-d", address, "-j", chain);
        ipt("-t", "nat", "-N", natChain);
        ipt("-t", "nat", "-I", "POSTROUTING", "1", "-s", address, "-j", natChain);
        Path stateDir = bed.workDir().resolve("agent-" + suffix);
        Agent agent = new Agent(ns, hostname, address, suffix, stateDir, Netns.uniqueIfName("tca"));
        agents.add(agent);
        applyZone(agent, zone);
        return agent;
    }

    /** Moves a host between zones by rewriting its router chains; address, routes and agent stay as they are. */
    public void moveTo(Agent agent, Zone zone) {
        applyZone(agent, zone);
    }

    private void applyZone(Agent agent, Zone zone) {
        String chain = "z-" + agent.suffix;
        String natChain = "n-" + agent.suffix;
        ipt("-F", chain);
        ipt("-t", "nat", "-F", natChain);
        switch (zone) {
            case CAMPUS -> ipt("-A", chain, "-p", "udp", "-j", "DROP");
            case LAB -> ipt("-t", "nat", "-A", natChain, "-j", "ACCEPT");
            case OPEN -> {
                ipt("-A", chain, "-j", "ACCEPT");
                ipt("-t", "nat", "-A", natChain, "-j", "ACCEPT");
            }
        }
        agent.zone = zone;
    }

    public Server server() {
        return server;
    }

    public NetworkNamespace router() {
        return router;
    }

    public Netns bed() {
        return bed;
    }

    CommandResult trellis(NetworkNamespace ns, Duration timeout, String... args) {
        String[] argv = new String[args.length + 1];
        argv[0] = launcher.toString();
        System.arraycopy(args, 0, argv, 1, args.length);
        return ns.run(Map.of(), timeout, argv);
    }

    public void dumpDiagnostics(PrintStream out) {
        out.println("===== campus testbed " + bed.workDir() + " =====");
        try {
            out.println("--- router iptables:\n" + router.run(Tools.require("iptables-save")).stdout());
        } catch (RuntimeException e) {
            out.println("(iptables-save failed: " + e + ")");
        }
        for (Server s : servers()) {
            HostProcess sp = s.process;
            if (sp != null) {
                out.println("--- server " + s.name + " alive=" + sp.isAlive() + " log tail:\n" + tail(sp.output(), 60));
            }
        }
        for (HostProcess r : relays) {
            out.println("--- " + r.label() + " alive=" + r.isAlive() + " log tail:\n" + tail(r.output(), 40));
        }
        for (Agent a : agents) {
            HostProcess p = a.process;
            out.println("--- agent " + a + " zone " + a.zone + (p == null ? " (not started)" : " alive=" + p.isAlive()));
            if (p != null) {
                out.println(tail(p.output(), 60));
                try {
                    out.println("status: " + a.statusNow().toPrettyString());
                } catch (RuntimeException e) {
                    out.println("(status failed: " + e + ")");
                }
            }
        }
        out.println("===== end of campus testbed =====");
    }

    @Override
    public void close() {
        try {
            for (Agent a : agents) {
                a.stop();
            }
            for (Server s : servers()) {
                HostProcess sp = s.process;
                if (sp != null && sp.isAlive() && sp.terminate(Duration.ofSeconds(20)).isEmpty()) {
                    sp.stop();
                }
            }
            for (HostProcess r : relays) {
                if (r.isAlive() && r.terminate(Duration.ofSeconds(10)).isEmpty()) {
                    r.stop();
                }
            }
            for (HostProcess line : delayLines) {
                if (line.isAlive() && line.terminate(Duration.ofSeconds(5)).isEmpty()) {
                    line.stop();
                }
            }
        } catch (RuntimeException | Error e) {
            System.err.println("[campus] stopping processes: " + e);
        } finally {
            bed.close();
            for (Agent a : agents) {
                try {
                    Files.deleteIfExists(Netns.WIREGUARD_SOCKET_DIR.resolve(a.interfaceName + ".sock"));
                } catch (IOException e) {
                    System.err.println("[campus] removing the wg socket of " + a.interfaceName + ": " + e);
                }
            }
            OPEN.remove(this);
        }
    }

    private List<Server> servers() {
        List<Server> all = new java.util.ArrayList<>(List.of(server));
        all.addAll(otherServers);
        return all;
    }

    /** {@code trellis server} in a server-network namespace. */
    public final class Server {
        private final NetworkNamespace ns;
        private final Path dataDir;
        private final String address;
        private final String name;
        private volatile HostProcess process;

        Server(NetworkNamespace ns, Path dataDir, String address, String name) {
            this.ns = ns;
            this.dataDir = dataDir;
            this.address = address;
            this.name = name;
        }

        public NetworkNamespace namespace() {
            return ns;
        }

        public String address() {
            return address;
        }

        public String url() {
            return "http://" + address + ":" + SERVER_PORT;
        }

        /** The running process (null before the first start). */
        public HostProcess process() {
            return process;
        }

        public void start() {
            start(null);
        }

        /** Starts with {@code config} (HOCON, e.g. relay settings) in a config file; null: none. */
        public void start(String config) {
            List<String> argv = new java.util.ArrayList<>(List.of(launcher.toString(), "server",
                    "--data-dir", dataDir.toString(), "--listen", "0.0.0.0:" + SERVER_PORT));
            if (config != null) {
                Path file = bed.workDir().resolve(name + ".conf");
                try {
                    Files.writeString(file, config);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                argv.addAll(List.of("--config", file.toString()));
            }
            HostProcess p = ns.start("trellis-" + name, Map.of(), argv.toArray(String[]::new));
            process = p;
            Await.until("trellis server " + name + " listening", Duration.ofSeconds(90), () -> {
                if (!p.isAlive()) {
                    throw new AssertionError("trellis server exited early:\n" + tail(p.output(), 60));
                }
                return p.output().contains("trellis server listening on");
            });
        }

        public CommandResult admin(String group, String verb, String... args) {
            String[] argv = new String[args.length + 4];
            argv[0] = group;
            argv[1] = verb;
            argv[2] = "--data-dir";
            argv[3] = dataDir.toString();
            System.arraycopy(args, 0, argv, 4, args.length);
            return trellis(ns, Duration.ofSeconds(60), argv);
        }

        /** Creates user {@code user} and a reusable auth key for it; returns the key. */
        public String userWithReusableKey(String user) {
            admin("users", "create", user).orThrow();
            return admin("authkeys", "create", "--user", user, "--reusable").orThrow().stdout().strip().lines().toList()
                    .getLast().strip();
        }
    }

    /** One host running {@code trellis agent}. */
    public final class Agent {
        private final NetworkNamespace ns;
        private final String hostname;
        private final String address;
        private final String suffix;
        private final Path stateDir;
        private final String interfaceName;
        private volatile HostProcess process;
        private volatile Zone zone;
        private volatile String overlay;

        Agent(NetworkNamespace ns, String hostname, String address, String suffix, Path stateDir, String interfaceName) {
            this.ns = ns;
            this.hostname = hostname;
            this.address = address;
            this.suffix = suffix;
            this.stateDir = stateDir;
            this.interfaceName = interfaceName;
        }

        public NetworkNamespace namespace() {
            return ns;
        }

        public String hostname() {
            return hostname;
        }

        public String address() {
            return address;
        }

        public String interfaceName() {
            return interfaceName;
        }

        public Path stateDir() {
            return stateDir;
        }

        public Zone zone() {
            return zone;
        }

        public void start() {
            start(Map.of());
        }

        /** Starts the agent with extra environment (e.g. TRELLIS_HOME_RELAY). */
        public void start(Map<String, String> env) {
            HostProcess p = ns.start("trellis-agent-" + hostname, env, launcher.toString(), "agent",
                    "--state-dir", stateDir.toString(), "--interface", interfaceName);
            process = p;
            Await.until("trellis agent " + hostname + " answering on its local API", Duration.ofSeconds(60), () -> {
                if (!p.isAlive()) {
                    throw new AssertionError("trellis agent " + hostname + " exited early:\n" + tail(p.output(), 60));
                }
                try {
                    statusNow();
                    return true;
                } catch (UncheckedIOException e) {
                    return false;
                }
            });
        }

        void stop() {
            HostProcess p = process;
            if (p != null && p.isAlive() && p.terminate(Duration.ofSeconds(10)).isEmpty()) {
                p.stop();
            }
        }

        /** {@code trellis up}; throws unless it exits 0. */
        public void up(String loginServer, String authKey) {
            trellis("up", "--state-dir", stateDir.toString(), "--login-server", loginServer, "--authkey", authKey,
                    "--hostname", hostname).orThrow();
        }

        /** The agent's own IPv4 overlay address ({@code trellis ip -4}), cached. */
        public String overlay() {
            if (overlay == null) {
                overlay = trellis("ip", "-4", "--state-dir", stateDir.toString()).orThrow().stdout().strip();
            }
            return overlay;
        }

        /** {@code trellis ping -c N PEER}: the command's result (stdout has "pong from ... via ..."). */
        public CommandResult trellisPing(String peer, int count) {
            return trellis("ping", "-c", Integer.toString(count), "--state-dir", stateDir.toString(), peer);
        }

        public CommandResult trellis(String... args) {
            return CampusTestbed.this.trellis(ns, Duration.ofSeconds(60), args);
        }

        /** Status straight from the local API (what {@code status --json} prints). */
        public JsonNode statusNow() {
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

        /** {@code trellis status --json} through the CLI. */
        public JsonNode statusCli() {
            try {
                return ControlJson.MAPPER.readTree(trellis("status", "--state-dir", stateDir.toString(), "--json").orThrow().stdout());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        /** The peer entry for {@code peerHostname} in the current status, or null. */
        public JsonNode peer(String peerHostname) {
            for (JsonNode p : statusNow().path("peers")) {
                if (peerHostname.equals(p.path("hostname").asText())) {
                    return p;
                }
            }
            return null;
        }

        /** "direct", "relay", or null if the peer is not (yet) in the map. */
        public String pathTo(Agent other) {
            JsonNode p = peer(other.hostname);
            return p == null ? null : p.path("path").asText(null);
        }

        @Override
        public String toString() {
            return hostname + " (" + address + " in " + ns + ")";
        }
    }

    static String tail(String text, int lines) {
        String[] all = text.split("\n", -1);
        return String.join("\n", java.util.Arrays.asList(all).subList(Math.max(0, all.length - lines), all.length));
    }
}
