package dev.trellis.system.campus;

import dev.trellis.system.harness.FailureDump;
import dev.trellis.system.harness.TestEnv;
import dev.trellis.system.harness.Trellis;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisServerProcess;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Netns;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Tools;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The reference campus in network namespaces. A router namespace ({@code ip_forward=1}) joins, with
 * one veth per host (host address {@code /32}, default route via the network's gateway address on
 * the router's end):
 *
 * <ul>
 *   <li>the server network {@code 198.18.10.0/24}: {@code trellis server} (HTTP, WebSocket relay on
 *       8080, STUN 3478);
 *   <li>the lab network {@code 198.18.20.0/24}: UDP allowed among lab hosts and to the server, no
 *       NAT;
 *   <li>campus networks {@code 198.18.(30+k).0/24}, one per campus host: NAT (MASQUERADE for the
 *       subnet), only TCP to the server's port 8080 (and replies) leaves; all UDP dropped.
 * </ul>
 *
 * Router FORWARD policy is DROP: first every host's own chain ({@code z-HOST}: in the campus zone
 * it drops all UDP from or to the host, in the lab zone it is empty), then established/related, TCP
 * to server:8080, and UDP (which by then can only be between lab-zone hosts and the server).
 * Traffic between client networks is otherwise dropped. In the nat table, a host's chain {@code
 * n-HOST} is empty on campus (the subnet's MASQUERADE applies) and ACCEPTs in the lab (no NAT).
 * {@link #moveTo} flips both chains, so a host changes zone without changing its address and its
 * agent keeps running.
 *
 * <p>Everything stays inside our namespaces (no link to the root namespace), so fixed addresses
 * never collide with other runs; host-wide names (the agents' interfaces and their wg sockets) are
 * random. Servers, agents and relays are the harness's ({@link TestEnv}); a failing test prints
 * them and the router's rules ({@link FailureDump}).
 */
public final class CampusTestbed implements AutoCloseable {
  public static final int SERVER_PORT = TrellisServerProcess.PORT;
  public static final String SERVER_ADDRESS = "198.18.10.2";
  static final String SERVER_GATEWAY = "198.18.10.1";
  static final String LAB_PREFIX = "198.18.20.";

  /**
   * LAB and CAMPUS as described above; OPEN lets everything to and from the host through, un-NATed
   * (the "raw" baseline).
   */
  public enum Zone {
    LAB,
    CAMPUS,
    OPEN
  }

  /**
   * An emulated campus link for every client host: {@code tbf} at {@code rateMbit} on both ends of
   * its veth and, when {@code oneWayDelayMicros > 0}, the {@code delayLine} program (an L2 bridge
   * holding each frame that long, {@code delayline IF_A IF_B MICROS}) in a namespace of its own
   * between the host and the router. The server's link is not shaped.
   */
  public record LinkShape(int rateMbit, int oneWayDelayMicros, Path delayLine) {
    public LinkShape {
      if (rateMbit <= 0 || oneWayDelayMicros < 0) {
        throw new IllegalArgumentException("rate must be positive and delay not negative");
      }
      if (oneWayDelayMicros > 0 && (delayLine == null || !Files.isExecutable(delayLine))) {
        throw new IllegalArgumentException(
            "delay line program " + delayLine + " is missing or not executable");
      }
    }
  }

  private final TestEnv env;
  private final Netns bed;
  private final NetworkNamespace router;
  private final TrellisServerProcess server;
  private final List<TrellisServerProcess> otherServers = new CopyOnWriteArrayList<>();

  /** Each agent's host: the suffix naming its router chains, and its zone. */
  private final Map<TrellisAgentProcess, Host> hosts = new ConcurrentHashMap<>();

  private final AtomicInteger nextLabHost = new AtomicInteger(10);
  private final AtomicInteger nextCampusNet = new AtomicInteger(31);
  private final LinkShape shape;

  private static final class Host {
    final String suffix;
    volatile Zone zone;

    Host(String suffix) {
      this.suffix = suffix;
    }
  }

  private CampusTestbed(LinkShape shape) {
    this.shape = shape;
    env = TestEnv.create("campus testbed", this::dumpRouter);
    bed = env.bed();
    try {
      router = bed.newNamespace("rtr");
      router.exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
      ipt("-P", "FORWARD", "DROP");
      ipt("-N", "zones");
      ipt("-A", "FORWARD", "-j", "zones");
      ipt("-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
      acceptTcpTo(SERVER_ADDRESS, SERVER_PORT);
      // Only UDP between lab-zone hosts and the server gets this far: campus-zone hosts' UDP is
      // dropped in "zones".
      ipt("-A", "FORWARD", "-p", "udp", "-j", "ACCEPT");
      server =
          env.newServer(
              attach("srv", SERVER_ADDRESS, SERVER_GATEWAY, null), "server", SERVER_ADDRESS);
    } catch (RuntimeException | Error e) {
      env.close();
      throw e;
    }
  }

  /** A new campus (router and server namespace; server not started). Skips visibly without root. */
  public static CampusTestbed create() {
    return create(null);
  }

  /**
   * Starts each agent, logs it in with {@code server}'s URL and {@code login} (its key, then any
   * more {@code trellis up} arguments) and learns its address, all at once; returns when every one
   * has (and rethrows the first failure).
   */
  public static void startAll(String server, Map<TrellisAgentProcess, List<String>> login) {
    startAll(server, login, Map.of());
  }

  /** The same, every agent with extra environment {@code env}. */
  public static void startAll(
      String server, Map<TrellisAgentProcess, List<String>> login, Map<String, String> env) {
    CompletableFuture.allOf(
            login.entrySet().stream()
                .map(
                    e ->
                        CompletableFuture.runAsync(
                            () -> {
                              TrellisAgentProcess agent = e.getKey();
                              List<String> args = e.getValue();
                              agent.start(env);
                              agent.up(
                                  server,
                                  args.getFirst(),
                                  args.subList(1, args.size()).toArray(String[]::new));
                              agent.overlay();
                            }))
                .toArray(CompletableFuture[]::new))
        .join();
  }

  /**
   * Builds a plain campus, runs {@code scenario} on it, prints everything open if it fails, and
   * tears it down.
   */
  public static void run(FailureDump.Body<CampusTestbed> scenario) throws Exception {
    FailureDump.around(create(), scenario);
  }

  /** A new campus whose client links have {@code shape} (null: plain veths). */
  public static CampusTestbed create(LinkShape shape) {
    Tools.require("iptables");
    if (shape != null) {
      Tools.require("tc");
    }
    return new CampusTestbed(shape);
  }

  /** Lets TCP to {@code address:port} through the router from every zone. */
  private void acceptTcpTo(String address, int port) {
    ipt(
        "-A",
        "FORWARD",
        "-p",
        "tcp",
        "-d",
        address,
        "--dport",
        Integer.toString(port),
        "-j",
        "ACCEPT");
  }

  private void ipt(String... args) {
    String[] argv = new String[args.length + 2];
    argv[0] = Tools.require("iptables");
    argv[1] = "-w";
    System.arraycopy(args, 0, argv, 2, args.length);
    router.exec(argv);
  }

  /**
   * Namespace {@code suffix} with {@code address/32} on eth0, veth {@code r-suffix} on the router
   * holding {@code gateway}; with a {@code shape}, rate-limited both ways and, with a delay,
   * through a delay line in namespace {@code d-suffix}.
   */
  private NetworkNamespace attach(String suffix, String address, String gateway, LinkShape shape) {
    NetworkNamespace ns = bed.newNamespace(suffix);
    String port = "r-" + suffix;
    if (shape != null && shape.oneWayDelayMicros() > 0) {
      NetworkNamespace delay = bed.newNamespace("d-" + suffix);
      bed.veth(delay, "host", ns, "eth0");
      bed.veth(router, port, delay, "rtr");
      HostProcess line =
          env.keep(
              delay.start(
                  "delayline-" + suffix,
                  Map.of(),
                  shape.delayLine().toString(),
                  "host",
                  "rtr",
                  Integer.toString(shape.oneWayDelayMicros())));
      line.awaitReady(
          "delay line " + suffix + " running",
          Duration.ofSeconds(10),
          () -> !line.output().isEmpty());
    } else {
      bed.veth(router, port, ns, "eth0");
    }
    if (shape != null) {
      String rate = shape.rateMbit() + "mbit";
      router.exec(
          Tools.require("tc"),
          "qdisc",
          "add",
          "dev",
          port,
          "root",
          "tbf",
          "rate",
          rate,
          "burst",
          "32kbit",
          "latency",
          "50ms");
      ns.exec(
          Tools.require("tc"),
          "qdisc",
          "add",
          "dev",
          "eth0",
          "root",
          "tbf",
          "rate",
          rate,
          "burst",
          "32kbit",
          "latency",
          "50ms");
    }
    router.exec(Tools.ip(), "addr", "add", gateway + "/32", "dev", port);
    router.exec(Tools.ip(), "route", "add", address + "/32", "dev", port);
    ns.exec(Tools.ip(), "addr", "add", address + "/32", "dev", "eth0");
    ns.exec(Tools.ip(), "route", "add", gateway + "/32", "dev", "eth0");
    ns.exec(Tools.ip(), "route", "add", "default", "via", gateway);
    return ns;
  }

  /**
   * Lets TCP to the server host's {@code port} through from every zone, as port 8080 is (another
   * overlay's hub on the server host, for comparisons).
   */
  public void allowTcpToServer(int port) {
    acceptTcpTo(SERVER_ADDRESS, port);
  }

  /**
   * A host on the server network ({@code 198.18.10.N}) running {@code trellis relay} for {@code
   * region}, reachable from every zone on TCP port 8080 like the server; {@code apiKey} is an admin
   * API key of the server.
   */
  public HostProcess startStandaloneRelay(
      String suffix, String address, String region, String apiKey) {
    NetworkNamespace ns = attach(suffix, address, SERVER_GATEWAY, null);
    acceptTcpTo(address, SERVER_PORT);
    Path keyFile = bed.writeSecret("relay-" + suffix + ".key", apiKey + "\n");
    HostProcess p =
        env.keep(
            Trellis.start(
                ns,
                "trellis-relay-" + region,
                Map.of(),
                List.of(
                    "relay",
                    "--region",
                    region,
                    "--login-server",
                    server.url(),
                    "--api-key-file",
                    keyFile.toString(),
                    "--listen",
                    "0.0.0.0:" + SERVER_PORT,
                    "--data-dir",
                    bed.workDir().resolve("relay-" + suffix).toString(),
                    "--stun-port",
                    "0")));
    p.awaitReady(
        "trellis relay " + region + " listening",
        TrellisServerProcess.START_TIMEOUT,
        () -> p.output().contains("trellis relay listening on"));
    return p;
  }

  /**
   * Another host on the server network ({@code 198.18.10.N}) for a {@code trellis server} of its
   * own (not started): reachable from every zone on TCP port 8080 like the first, and on any TCP
   * port from the other server-network hosts (cluster, relay mesh, PostgreSQL).
   */
  public TrellisServerProcess newServerHost(String suffix, String address) {
    NetworkNamespace ns = attach(suffix, address, SERVER_GATEWAY, null);
    acceptTcpTo(address, SERVER_PORT);
    if (otherServers.isEmpty()) {
      ipt(
          "-A",
          "FORWARD",
          "-p",
          "tcp",
          "-s",
          SERVER_GATEWAY.replaceAll("\\.1$", ".0/24"),
          "-d",
          SERVER_GATEWAY.replaceAll("\\.1$", ".0/24"),
          "-j",
          "ACCEPT");
    }
    TrellisServerProcess s = env.newServer(ns, suffix, address);
    otherServers.add(s);
    return s;
  }

  /**
   * Cuts a server-network host off from every other host (both ways, in the router), or ({@code cut
   * = false}) lets it back in; connections in flight stop getting packets too.
   */
  public void isolate(TrellisServerProcess s, boolean cut) {
    String verb = cut ? "-I" : "-D";
    if (cut) {
      ipt(verb, "FORWARD", "1", "-s", s.address(), "-j", "DROP");
      ipt(verb, "FORWARD", "1", "-d", s.address(), "-j", "DROP");
    } else {
      ipt(verb, "FORWARD", "-s", s.address(), "-j", "DROP");
      ipt(verb, "FORWARD", "-d", s.address(), "-j", "DROP");
    }
  }

  /** A lab host (198.18.20.N) with an agent, not started. */
  public TrellisAgentProcess newLabAgent(String suffix, String hostname) {
    String address = LAB_PREFIX + nextLabHost.getAndIncrement();
    return newAgent(suffix, hostname, address, LAB_PREFIX + "1", Zone.LAB);
  }

  /**
   * A campus host alone on its own campus network 198.18.(30+k).10/24, behind NAT, with an agent,
   * not started.
   */
  public TrellisAgentProcess newCampusAgent(String suffix, String hostname) {
    int net = nextCampusNet.getAndIncrement();
    String prefix = "198.18." + net + ".";
    ipt("-t", "nat", "-A", "POSTROUTING", "-s", prefix + "0/24", "-j", "MASQUERADE");
    return newAgent(suffix, hostname, prefix + "10", prefix + "1", Zone.CAMPUS);
  }

  private TrellisAgentProcess newAgent(
      String suffix, String hostname, String address, String gateway, Zone zone) {
    NetworkNamespace ns = attach(suffix, address, gateway, shape);
    String chain = "z-" + suffix;
    String natChain = "n-" + suffix;
    ipt("-N", chain);
    ipt("-A", "zones", "-s", address, "-j", chain);
    ipt("-A", "zones", "-d", address, "-j", chain);
    ipt("-t", "nat", "-N", natChain);
    ipt("-t", "nat", "-I", "POSTROUTING", "1", "-s", address, "-j", natChain);
    TrellisAgentProcess agent = env.newAgent(ns, hostname, address, "tca");
    hosts.put(agent, new Host(suffix));
    moveTo(agent, zone);
    return agent;
  }

  /**
   * Moves a host between zones by rewriting its router chains; address, routes and agent stay as
   * they are.
   */
  public void moveTo(TrellisAgentProcess agent, Zone zone) {
    Host host = hosts.get(agent);
    String chain = "z-" + host.suffix;
    String natChain = "n-" + host.suffix;
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
    host.zone = zone;
  }

  public TrellisServerProcess server() {
    return server;
  }

  public NetworkNamespace router() {
    return router;
  }

  public Netns bed() {
    return bed;
  }

  /** The router's rules and every host's zone: the campus's part of what a failing test prints. */
  private void dumpRouter(PrintStream out) {
    try {
      out.println("--- router iptables:\n" + router.run(Tools.require("iptables-save")).stdout());
    } catch (RuntimeException e) {
      out.println("(iptables-save failed: " + e + ")");
    }
    for (TrellisAgentProcess agent : env.agents()) {
      out.println("--- " + agent + ": zone " + hosts.get(agent).zone);
    }
  }

  @Override
  public void close() {
    env.close();
  }

  @Override
  public String toString() {
    return env.toString();
  }
}
