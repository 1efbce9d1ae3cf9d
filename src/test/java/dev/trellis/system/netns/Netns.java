package dev.trellis.system.netns;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * A test bed of network namespaces. Every name it creates carries a random id ({@code trt-<id>-…}
 * for namespaces, {@code twg<random>} for WireGuard interfaces, whose sockets share the host-wide
 * /var/run/wireguard), so concurrent or leftover runs never collide.
 *
 * <p>{@link #close()} kills every process inside its namespaces (all of them were started by this
 * bed: the namespaces are its own), removes sockets left by killed daemons, deletes the namespaces
 * and the scratch directory.
 */
public final class Netns implements AutoCloseable {
  private static final SecureRandom RANDOM = new SecureRandom();
  private static final String ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
  private static final Set<Netns> OPEN = ConcurrentHashMap.newKeySet();
  public static final Path WIREGUARD_SOCKET_DIR = Path.of("/var/run/wireguard");

  static {
    Runtime.getRuntime()
        .addShutdownHook(new Thread(() -> OPEN.forEach(Netns::close), "netns-cleanup"));
  }

  private final String id = random(6);
  private final Path workDir;
  private final List<NetworkNamespace> namespaces = new CopyOnWriteArrayList<>();
  private final List<HostProcess> processes = new CopyOnWriteArrayList<>();
  private final List<WgInterface> interfaces = new CopyOnWriteArrayList<>();
  private final List<String> hostLinks = new CopyOnWriteArrayList<>();
  private final AtomicInteger counter = new AtomicInteger();
  private volatile boolean closed;

  private Netns() {
    try {
      workDir =
          Files.createTempDirectory(
              "trt-" + id + "-",
              PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    OPEN.add(this);
  }

  /** A new, empty test bed. Call {@link Prerequisites#check()} first. */
  public static Netns create() {
    return new Netns();
  }

  /** All test beds not yet closed (for diagnostics on failure). */
  public static Set<Netns> open() {
    return Set.copyOf(OPEN);
  }

  public String id() {
    return id;
  }

  /** Scratch directory (mode 0700) for keys, configs and logs; deleted on close. */
  public Path workDir() {
    return workDir;
  }

  /** A random lowercase alphanumeric string. */
  public static String random(int length) {
    StringBuilder sb = new StringBuilder(length);
    for (int i = 0; i < length; i++) {
      sb.append(ALPHABET.charAt(RANDOM.nextInt(ALPHABET.length())));
    }
    return sb.toString();
  }

  /**
   * A host-wide unique interface name: {@code prefix} plus random characters, 15 characters at
   * most.
   */
  public static String uniqueIfName(String prefix) {
    return prefix + random(15 - prefix.length() - 2);
  }

  /** Creates namespace {@code trt-<id>-<suffix>} with its loopback up. */
  public NetworkNamespace newNamespace(String suffix) {
    String name = "trt-" + id + "-" + suffix;
    Commands.check(List.of(Tools.ip(), "netns", "add", name));
    NetworkNamespace ns = new NetworkNamespace(this, name);
    namespaces.add(ns);
    // Its own resolver file (ip netns exec mounts /etc/netns/NAME/* over /etc), so an agent that
    // points resolv.conf at itself changes this namespace's, never the machine's.
    try {
      Files.createDirectories(ns.etc());
      Files.writeString(
          ns.etc().resolve("resolv.conf"),
          "# " + name + ": a test namespace's own resolver file, no name server\n");
    } catch (IOException e) {
      throw new UncheckedIOException("cannot give " + name + " its own resolv.conf", e);
    }
    ns.exec(Tools.ip(), "link", "set", "lo", "up");
    return ns;
  }

  /**
   * Creates a veth pair with one end, {@code aName}, in {@code a} and the other, {@code bName}, in
   * {@code b}, both up. The pair is created directly inside the namespaces, never in the host
   * namespace.
   */
  public void veth(NetworkNamespace a, String aName, NetworkNamespace b, String bName) {
    Commands.check(
        List.of(
            Tools.ip(),
            "link",
            "add",
            aName,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            bName,
            "netns",
            b.name()));
    a.exec(Tools.ip(), "link", "set", aName, "up");
    b.exec(Tools.ip(), "link", "set", bName, "up");
  }

  /**
   * Creates a veth pair with {@code hostName} in the host (root) namespace and {@code nsName} in
   * {@code ns}, both up; the host end is deleted on {@link #close()}. Only for tests whose JVM
   * itself must reach a namespace: {@code hostName} must be host-wide unique ({@link
   * #uniqueIfName}).
   */
  public void vethToHost(String hostName, NetworkNamespace ns, String nsName) {
    Commands.check(
        List.of(
            Tools.ip(),
            "link",
            "add",
            hostName,
            "type",
            "veth",
            "peer",
            "name",
            nsName,
            "netns",
            ns.name()));
    hostLinks.add(hostName);
    Commands.check(List.of(Tools.ip(), "link", "set", hostName, "up"));
    ns.exec(Tools.ip(), "link", "set", nsName, "up");
  }

  /**
   * Adds an address to a device in the host (root) namespace, e.g. the host end of {@link
   * #vethToHost}.
   */
  public static void addHostAddress(String dev, String cidr) {
    Commands.check(List.of(Tools.ip(), "addr", "add", cidr, "dev", dev));
  }

  /**
   * Adds an address to a device; IPv6 addresses skip duplicate address detection so they are usable
   * at once.
   */
  public static void addAddress(NetworkNamespace ns, String dev, String cidr) {
    if (cidr.contains(":")) {
      ns.exec(Tools.ip(), "-6", "addr", "add", cidr, "dev", dev, "nodad");
    } else {
      ns.exec(Tools.ip(), "addr", "add", cidr, "dev", dev);
    }
  }

  public static void deleteAddress(NetworkNamespace ns, String dev, String cidr) {
    ns.exec(Tools.ip(), "addr", "del", cidr, "dev", dev);
  }

  /** Writes a file readable by root only (keys, configs). */
  public Path writeSecret(String fileName, String content) {
    Path file = workDir.resolve(fileName);
    try {
      Files.deleteIfExists(file);
      Files.createFile(
          file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
      Files.writeString(file, content, StandardCharsets.UTF_8);
      return file;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Writes an executable script (mode 0700) into the work directory. */
  public Path writeExecutable(String fileName, String content) {
    Path file = writeSecret(fileName, content);
    try {
      Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwx------"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return file;
  }

  /** A fresh log file path in the work directory. */
  Path newLog(String label) {
    return workDir.resolve(
        String.format(
            "%03d-%s.log", counter.incrementAndGet(), label.replaceAll("[^A-Za-z0-9_.-]", "_")));
  }

  CommandResult runLogged(List<String> argv, Map<String, String> env, Duration timeout) {
    int n = counter.incrementAndGet();
    return Commands.run(
        argv,
        env,
        null,
        timeout,
        workDir.resolve(String.format("%03d-cmd.out", n)),
        workDir.resolve(String.format("%03d-cmd.err", n)));
  }

  HostProcess startTracked(String label, List<String> argv, Map<String, String> env) {
    HostProcess p = HostProcess.start(label, argv, env, newLog(label));
    processes.add(p);
    return p;
  }

  void register(WgInterface wg) {
    interfaces.add(wg);
  }

  List<NetworkNamespace> namespaces() {
    return List.copyOf(namespaces);
  }

  /** Prints addresses, WireGuard state and daemon log tails: called when a test fails. */
  public void dumpDiagnostics(PrintStream out) {
    out.println("===== netns diagnostics for test bed " + id + " (" + workDir + ") =====");
    for (NetworkNamespace ns : namespaces) {
      try {
        out.println("--- " + ns + ": ip -br addr");
        out.println(ns.run(Tools.ip(), "-br", "addr").stdout().strip());
      } catch (RuntimeException e) {
        out.println("(failed: " + e.getMessage() + ")");
      }
    }
    for (WgInterface wg : interfaces) {
      try {
        out.println("--- " + wg + ": wg show");
        CommandResult r = wg.namespace().run(Tools.wg(), "show", wg.name());
        out.println((r.stdout() + r.stderr()).strip());
        out.println("--- " + wg + ": log tail (" + wg.log() + ")");
        out.println(Commands.tail(Commands.read(wg.log()), 40));
      } catch (RuntimeException e) {
        out.println("(failed: " + e.getMessage() + ")");
      }
    }
    for (HostProcess p : processes) {
      out.println("--- " + p + " alive=" + p.isAlive() + " output tail:");
      out.println(Commands.tail(p.output(), 20));
    }
    out.println("===== end of diagnostics =====");
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    List<String> problems = new ArrayList<>();
    for (HostProcess p : processes) {
      try {
        p.stop();
      } catch (RuntimeException e) {
        problems.add("stopping " + p + ": " + e.getMessage());
      }
    }
    // Everything still inside our namespaces was started by this bed (daemons that forked away from
    // the processes we tracked, e.g. wireguard-go's background child). SIGTERM first so daemons
    // remove
    // their sockets, then SIGKILL.
    List<ProcessHandle> leftovers =
        namespaces.stream()
            .flatMap(ns -> ns.pids().stream())
            .distinct()
            .map(ProcessHandle::of)
            .flatMap(Optional::stream)
            .toList();
    leftovers.forEach(ProcessHandle::destroy);
    if (!Await.within(
        Duration.ofSeconds(5), () -> leftovers.stream().noneMatch(ProcessHandle::isAlive))) {
      leftovers.stream().filter(ProcessHandle::isAlive).forEach(ProcessHandle::destroyForcibly);
      Await.within(
          Duration.ofSeconds(3), () -> leftovers.stream().noneMatch(ProcessHandle::isAlive));
    }
    for (WgInterface wg : interfaces) {
      try {
        Files.deleteIfExists(wg.socket());
      } catch (IOException e) {
        problems.add("removing " + wg.socket() + ": " + e.getMessage());
      }
    }
    for (String link : hostLinks) {
      // Usually gone already with its peer's namespace; only a leftover is worth a complaint.
      if (Commands.run(
              List.of(Tools.ip(), "link", "show", "dev", link),
              Map.of(),
              null,
              Commands.DEFAULT_TIMEOUT)
          .ok()) {
        CommandResult r =
            Commands.run(
                List.of(Tools.ip(), "link", "del", link), Map.of(), null, Commands.DEFAULT_TIMEOUT);
        if (!r.ok()) {
          problems.add(r.describe("exited with " + r.exitCode()));
        }
      }
    }
    for (NetworkNamespace ns : namespaces) {
      CommandResult r =
          Commands.run(
              List.of(Tools.ip(), "netns", "del", ns.name()),
              Map.of(),
              null,
              Commands.DEFAULT_TIMEOUT);
      if (!r.ok()) {
        problems.add(r.describe("exited with " + r.exitCode()));
      }
    }
    for (NetworkNamespace ns : namespaces) {
      try (Stream<Path> files = Files.walk(ns.etc())) {
        files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
      } catch (IOException e) {
        problems.add("removing " + ns.etc() + ": " + e.getMessage());
      }
    }
    try (Stream<Path> files = Files.walk(workDir)) {
      files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
    } catch (IOException e) {
      problems.add("removing " + workDir + ": " + e.getMessage());
    }
    OPEN.remove(this);
    if (!problems.isEmpty()) {
      System.err.println(
          "[netns] cleanup of test bed "
              + id
              + " had problems:\n  "
              + String.join("\n  ", problems));
    }
  }

  @Override
  public String toString() {
    return "Netns[" + id + "]";
  }
}
