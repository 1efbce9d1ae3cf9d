package dev.trellis.system.netns;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One userspace WireGuard interface (a daemon of some {@link WgImpl}) inside a namespace, driven
 * only through {@code wg} and {@code ip}, exactly as an administrator would.
 */
public final class WgInterface {
  private static final Set<String> NOT_DAEMONS = Set.of("wg", "ip", "ping", "iperf3", "ss");
  public static final Duration START_TIMEOUT = Duration.ofSeconds(60);
  public static final Duration STOP_TIMEOUT = Duration.ofSeconds(10);

  private final NetworkNamespace ns;
  private final WgImpl impl;
  private final String name;
  private final Path log;

  private WgInterface(NetworkNamespace ns, WgImpl impl, String name, Path log) {
    this.ns = ns;
    this.impl = impl;
    this.name = name;
    this.log = log;
    ns.owner().register(this);
  }

  /**
   * Starts {@code impl} for a new, host-wide unique interface name in {@code ns}, the way wg-quick
   * does, and checks the contract: the command returns 0 with the interface and its UAPI socket in
   * place.
   */
  public static WgInterface start(NetworkNamespace ns, WgImpl impl, Map<String, String> extraEnv) {
    impl.checkAvailable();
    String name = Netns.uniqueIfName("twg");
    HostProcess launcher =
        ns.start(
            impl.name().toLowerCase() + "-" + name,
            impl.environment(extraEnv),
            impl.startCommand(name).toArray(String[]::new));
    WgInterface wg = new WgInterface(ns, impl, name, launcher.log());
    CommandResult r = launcher.await(START_TIMEOUT);
    if (!r.ok()) {
      throw new AssertionError(
          impl
              + " failed to create "
              + name
              + " in "
              + ns
              + " (exit "
              + r.exitCode()
              + "):\n"
              + Commands.clip(r.stdout()));
    }
    if (!wg.socketExists() || !ns.hasLink(name)) {
      throw new AssertionError(
          impl
              + " returned from '"
              + String.join(" ", impl.startCommand(name))
              + "' but socket exists="
              + wg.socketExists()
              + ", link exists="
              + ns.hasLink(name)
              + "; both must exist when the command returns. Log:\n"
              + Commands.clip(wg.logText()));
    }
    return wg;
  }

  /**
   * Takes charge of an interface someone else (wg-quick) created; logs then live wherever that tool
   * put them.
   */
  public static WgInterface adopt(NetworkNamespace ns, WgImpl impl, String name, Path log) {
    return new WgInterface(ns, impl, name, log);
  }

  public String name() {
    return name;
  }

  public NetworkNamespace namespace() {
    return ns;
  }

  public WgImpl impl() {
    return impl;
  }

  public Path log() {
    return log;
  }

  public String logText() {
    return Commands.read(log);
  }

  public Path socket() {
    return Netns.WIREGUARD_SOCKET_DIR.resolve(name + ".sock");
  }

  public boolean socketExists() {
    return Files.exists(socket());
  }

  public boolean linkExists() {
    return ns.hasLink(name);
  }

  // ---- configuration through wg(8) and ip(8) ----

  /** {@code wg set NAME private-key FILE listen-port PORT}. */
  public WgInterface configure(WgKeys keys, int listenPort) {
    wg(
        "set",
        name,
        "private-key",
        keys.privateKeyFile().toString(),
        "listen-port",
        Integer.toString(listenPort));
    return this;
  }

  /**
   * {@code wg set NAME peer PUB [preshared-key F] [endpoint E] [persistent-keepalive N] allowed-ips
   * …}.
   */
  public WgInterface addPeer(Peer peer) {
    List<String> args = new ArrayList<>(List.of("set", name, "peer", peer.publicKey()));
    if (peer.presharedKeyFile() != null) {
      args.addAll(List.of("preshared-key", peer.presharedKeyFile().toString()));
    }
    if (peer.endpoint() != null) {
      args.addAll(List.of("endpoint", peer.endpoint()));
    }
    if (peer.persistentKeepalive() != null) {
      args.addAll(List.of("persistent-keepalive", Integer.toString(peer.persistentKeepalive())));
    }
    args.addAll(List.of("allowed-ips", String.join(",", peer.allowedIps())));
    wg(args.toArray(String[]::new));
    return this;
  }

  public WgInterface address(String cidr) {
    Netns.addAddress(ns, name, cidr);
    return this;
  }

  public WgInterface up() {
    ns.exec(Tools.ip(), "link", "set", name, "up");
    return this;
  }

  /** Runs {@code wg ARGS} in this interface's namespace and returns stdout; throws on failure. */
  public String wg(String... args) {
    List<String> argv = new ArrayList<>(List.of(Tools.wg()));
    argv.addAll(List.of(args));
    return ns.exec(argv.toArray(String[]::new)).stdout();
  }

  // ---- state through wg show ----

  /** {@code wg show NAME latest-handshakes}: peer public key to Unix seconds (0 = never). */
  public Map<String, Long> latestHandshakes() {
    Map<String, Long> m = new LinkedHashMap<>();
    for (String[] f : table("latest-handshakes")) {
      m.put(f[0], Long.parseLong(f[1]));
    }
    return m;
  }

  public long latestHandshake(String peerPublicKey) {
    return latestHandshakes().getOrDefault(peerPublicKey, 0L);
  }

  /** {@code wg show NAME transfer}: peer public key to bytes received and sent. */
  public Map<String, Transfer> transfer() {
    Map<String, Transfer> m = new LinkedHashMap<>();
    for (String[] f : table("transfer")) {
      m.put(f[0], new Transfer(Long.parseLong(f[1]), Long.parseLong(f[2])));
    }
    return m;
  }

  public Transfer transfer(String peerPublicKey) {
    return transfer().getOrDefault(peerPublicKey, new Transfer(0, 0));
  }

  /** {@code wg show NAME endpoints}: peer public key to "ip:port", or "(none)". */
  public Map<String, String> endpoints() {
    Map<String, String> m = new LinkedHashMap<>();
    for (String[] f : table("endpoints")) {
      m.put(f[0], f[1]);
    }
    return m;
  }

  public String showconf() {
    return wg("showconf", name);
  }

  private List<String[]> table(String what) {
    return wg("show", name, what)
        .lines()
        .filter(l -> !l.isBlank())
        .map(l -> l.strip().split("\t"))
        .toList();
  }

  /** Bytes received from and sent to one peer, as {@code wg show transfer} reports them. */
  public record Transfer(long rx, long tx) {
    public Transfer minus(Transfer base) {
      return new Transfer(rx - base.rx, tx - base.tx);
    }
  }

  /** One {@code [Peer]} of a {@code wg set} command. */
  public record Peer(
      String publicKey,
      List<String> allowedIps,
      String endpoint,
      Path presharedKeyFile,
      Integer persistentKeepalive) {
    public static Peer of(String publicKey, String... allowedIps) {
      return new Peer(publicKey, List.of(allowedIps), null, null, null);
    }

    public Peer endpoint(String ep) {
      return new Peer(publicKey, allowedIps, ep, presharedKeyFile, persistentKeepalive);
    }

    public Peer presharedKey(Path file) {
      return new Peer(publicKey, allowedIps, endpoint, file, persistentKeepalive);
    }

    public Peer keepalive(Integer seconds) {
      return new Peer(publicKey, allowedIps, endpoint, presharedKeyFile, seconds);
    }
  }

  // ---- lifecycle ----

  /**
   * PIDs of the daemon serving this interface: processes in the namespace whose command line has
   * the (host-wide unique) interface name as an argument. wireguard-go forks itself into the
   * background (the child re-runs {@code wireguard-go NAME} with WG_PROCESS_FOREGROUND=1), so the
   * PID of the process we started is useless; Trellis' launcher execs java, whose command line ends
   * in {@code wg NAME}.
   */
  public List<Long> daemonPids() {
    List<Long> pids = new ArrayList<>();
    for (long pid : ns.pids()) {
      List<String> argv = NetworkNamespace.cmdline(pid);
      if (argv.isEmpty() || !argv.subList(1, argv.size()).contains(name)) {
        continue;
      }
      String exe = Path.of(argv.getFirst()).getFileName().toString();
      if (!NOT_DAEMONS.contains(exe)) {
        pids.add(pid);
      }
    }
    return pids;
  }

  /** Sends SIGTERM to the daemon; throws if no daemon process can be found. */
  public List<Long> sigterm() {
    List<Long> pids = daemonPids();
    if (pids.isEmpty()) {
      throw new AssertionError(
          "no daemon process for " + name + " found in " + ns + " (pids " + ns.pids() + ")");
    }
    pids.forEach(pid -> ProcessHandle.of(pid).ifPresent(ProcessHandle::destroy));
    return pids;
  }

  public boolean gone() {
    return !socketExists() && !linkExists() && daemonPids().isEmpty();
  }

  /**
   * SIGTERM and wait for interface, socket and process to vanish; falls back to {@code ip link
   * del}, then SIGKILL.
   */
  public void stop() {
    if (gone()) {
      return;
    }
    List<Long> pids = daemonPids();
    pids.forEach(pid -> ProcessHandle.of(pid).ifPresent(ProcessHandle::destroy));
    if (Await.within(STOP_TIMEOUT, this::gone)) {
      return;
    }
    ns.run(Tools.ip(), "link", "del", name);
    if (Await.within(Duration.ofSeconds(5), this::gone)) {
      return;
    }
    daemonPids().forEach(pid -> ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly));
    Await.within(Duration.ofSeconds(3), () -> daemonPids().isEmpty());
    try {
      Files.deleteIfExists(socket());
    } catch (IOException e) {
      // reported by close() if it persists
    }
  }

  @Override
  public String toString() {
    return impl + ":" + name + "@" + ns;
  }
}
