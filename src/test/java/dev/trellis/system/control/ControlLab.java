package dev.trellis.system.control;

import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.Commands;
import dev.trellis.system.netns.Netns;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Prerequisites;
import dev.trellis.system.netns.Tools;
import dev.trellis.system.netns.WgImpl;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A Trellis network in network namespaces: a "lan" namespace with bridge {@code br0}, and one namespace per
 * machine (the server's, each agent's) attached to the bridge by a veth, underlay {@code 198.18.N.0/24} with a
 * random N. One more veth joins the bridge from the root namespace ({@code 198.18.N.250}) so the test JVM
 * itself can speak HTTP and WebSocket to the server. Everything else stays inside our namespaces.
 *
 * <p>Servers and agents are started through the {@link Netns} harness, so their PIDs are tracked and
 * {@link #close()} stops them (SIGTERM first) and removes the namespaces.
 */
final class ControlLab implements AutoCloseable {
    static final int SERVER_PORT = 8080;
    static final int SERVER_HOST = 1;
    static final int ROOT_HOST = 250;
    private static final Set<ControlLab> OPEN = ConcurrentHashMap.newKeySet();
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Netns bed;
    private final int subnet;
    private final NetworkNamespace lan;
    private final String hostLink;
    private final Path launcher;
    private final TrellisServerNode server;
    private final List<TrellisAgentNode> agents = new CopyOnWriteArrayList<>();
    private final AtomicInteger nextAgentHost = new AtomicInteger(10);

    private ControlLab(Netns bed, int subnet) {
        this.bed = bed;
        this.subnet = subnet;
        this.launcher = launcher();
        OPEN.add(this);
        lan = bed.newNamespace("lan");
        lan.exec(Tools.ip(), "link", "add", "br0", "type", "bridge");
        lan.exec(Tools.ip(), "link", "set", "br0", "up");
        hostLink = Netns.uniqueIfName("trh");
        bed.vethToHost(hostLink, lan, "p-host");
        lan.exec(Tools.ip(), "link", "set", "p-host", "master", "br0");
        Netns.addHostAddress(hostLink, underlay(ROOT_HOST) + "/24");
        NetworkNamespace srv = attach("srv", SERVER_HOST);
        server = new TrellisServerNode(this, srv, underlay(SERVER_HOST), bed.workDir().resolve("server-data"));
    }

    /** A new lab with the server's namespace ready (not started). Skips visibly without root. */
    static ControlLab create() {
        Prerequisites.check();
        Netns bed = Netns.create();
        try {
            ControlLab lab = new ControlLab(bed, freeSubnet());
            // The root namespace reaches the server's namespace across the bridge.
            Await.until("the root namespace reaching " + lab.server.address() + " over the lab bridge", Duration.ofSeconds(10),
                    () -> Commands.run(List.of(Tools.require("ping"), "-n", "-c", "1", "-W", "1", lab.server.address()),
                            Map.of(), null, Duration.ofSeconds(5)).ok());
            return lab;
        } catch (RuntimeException | Error e) {
            OPEN.removeIf(l -> l.bed == bed);
            bed.close();
            throw e;
        }
    }

    /** Labs not yet closed, for diagnostics. */
    static Set<ControlLab> open() {
        return Set.copyOf(OPEN);
    }

    /** A 198.18.N.0/24 no route in the root namespace uses yet (N random, so concurrent runs rarely meet). */
    private static int freeSubnet() {
        String routes = Commands.check(List.of(Tools.ip(), "-4", "route", "show", "table", "all")).stdout();
        for (int attempt = 0; attempt < 50; attempt++) {
            int n = 64 + RANDOM.nextInt(180);
            if (!routes.contains("198.18." + n + ".")) {
                return n;
            }
        }
        throw new IllegalStateException("no free 198.18.N.0/24 subnet in the root namespace's routes");
    }

    private static Path launcher() {
        Path home = WgImpl.home();
        Path launcher = home.resolve("trellis");
        Path jar = home.resolve("control-plane/target/trellis.jar");
        if (!Files.isExecutable(launcher)) {
            throw new AssertionError("Trellis launcher " + launcher + " is missing or not executable");
        }
        if (!Files.isRegularFile(jar)) {
            throw new AssertionError(jar + " is missing: build Trellis first (" + home.resolve("build") + ")");
        }
        return launcher;
    }

    String underlay(int host) {
        return "198.18." + subnet + "." + host;
    }

    /** A new namespace {@code suffix} on the lab bridge with underlay address {@code 198.18.N.host/24} on eth0. */
    NetworkNamespace attach(String suffix, int host) {
        NetworkNamespace ns = bed.newNamespace(suffix);
        String port = "p-" + suffix;
        bed.veth(lan, port, ns, "eth0");
        lan.exec(Tools.ip(), "link", "set", port, "master", "br0");
        Netns.addAddress(ns, "eth0", underlay(host) + "/24");
        return ns;
    }

    /** A new agent machine (namespace, state directory, unique interface name), not started yet. */
    TrellisAgentNode newAgent(String suffix, String hostname) {
        int host = nextAgentHost.getAndIncrement();
        NetworkNamespace ns = attach(suffix, host);
        Path stateDir = bed.workDir().resolve("agent-" + suffix + "-" + Netns.random(4));
        TrellisAgentNode agent = new TrellisAgentNode(this, ns, hostname, underlay(host), stateDir, Netns.uniqueIfName("tra"));
        agents.add(agent);
        return agent;
    }

    Netns bed() {
        return bed;
    }

    TrellisServerNode server() {
        return server;
    }

    String launcherPath() {
        return launcher.toString();
    }

    /** Runs the trellis command in {@code ns}; never throws on a non-zero exit. */
    CommandResult trellis(NetworkNamespace ns, Duration timeout, String... args) {
        String[] argv = new String[args.length + 1];
        argv[0] = launcher.toString();
        System.arraycopy(args, 0, argv, 1, args.length);
        return ns.run(Map.of(), timeout, argv);
    }

    /** Server and agent logs, agent status and WireGuard state: printed when a test fails. */
    void dumpDiagnostics(PrintStream out) {
        out.println("===== trellis control lab (underlay 198.18." + subnet + ".0/24, " + bed.workDir() + ") =====");
        try {
            server.dumpDiagnostics(out);
        } catch (RuntimeException e) {
            out.println("(server diagnostics failed: " + e + ")");
        }
        for (TrellisAgentNode agent : agents) {
            try {
                agent.dumpDiagnostics(out);
            } catch (RuntimeException e) {
                out.println("(agent diagnostics failed: " + e + ")");
            }
        }
        out.println("===== end of trellis control lab =====");
    }

    @Override
    public void close() {
        try {
            // Agents first (a clean SIGTERM lets them remove their wg sockets), then the server, then the bed.
            for (TrellisAgentNode agent : agents) {
                agent.stop();
            }
            server.stop(Duration.ofSeconds(20));
        } catch (RuntimeException | Error e) {
            System.err.println("[control-lab] stopping processes: " + e);
        } finally {
            bed.close();
            for (TrellisAgentNode agent : agents) {
                try {
                    Files.deleteIfExists(Netns.WIREGUARD_SOCKET_DIR.resolve(agent.interfaceName() + ".sock"));
                } catch (IOException e) {
                    System.err.println("[control-lab] removing the wg socket of " + agent.interfaceName() + ": " + e);
                }
            }
            OPEN.remove(this);
        }
    }

    static String tail(String text, int lines) {
        String[] all = text.split("\n", -1);
        int from = Math.max(0, all.length - lines);
        return String.join("\n", java.util.Arrays.asList(all).subList(from, all.length));
    }
}
