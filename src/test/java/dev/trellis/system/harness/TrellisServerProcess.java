package dev.trellis.system.harness;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.control.server.LocalAdminAccess;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.Commands;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.NetworkNamespace;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * {@code trellis server} in its own namespace, listening on {@link #PORT}, with the admin commands
 * run next to it (they find the data directory's cli.json). It can be started again after a stop or
 * a kill, on the same data.
 */
public final class TrellisServerProcess {
  public static final int PORT = 8080;
  public static final Duration START_TIMEOUT = Duration.ofSeconds(90);
  public static final Duration ADMIN_TIMEOUT = Duration.ofSeconds(60);

  /** Fields of `nodes list --json` that change with presence, not with state. */
  private static final List<String> PRESENCE_FIELDS = List.of("online", "lastSeen", "endpoints");

  private final NetworkNamespace ns;
  private final String name;
  private final String address;
  private final Path dataDir;
  private final List<HostProcess> runs = new CopyOnWriteArrayList<>();
  private volatile HostProcess process;

  /**
   * A server named {@code name} (in labels and file names) at {@code address} in {@code ns}; not
   * started.
   */
  public TrellisServerProcess(NetworkNamespace ns, String name, String address, Path dataDir) {
    this.ns = ns;
    this.name = name;
    this.address = address;
    this.dataDir = dataDir;
  }

  public NetworkNamespace namespace() {
    return ns;
  }

  public String address() {
    return address;
  }

  /** The login server URL for agents. */
  public String url() {
    return "http://" + address + ":" + PORT;
  }

  public Path dataDir() {
    return dataDir;
  }

  public boolean running() {
    HostProcess p = process;
    return p != null && p.isAlive();
  }

  /** The latest run (null before the first start). */
  public HostProcess process() {
    return process;
  }

  /** Starts the server on {@link #dataDir()} and waits for "trellis server listening on". */
  public void start() {
    start(null);
  }

  /**
   * The same with {@code config} (HOCON, e.g. cluster or relay settings) in a config file; null:
   * none.
   */
  public void start(String config) {
    if (running()) {
      throw new IllegalStateException("server already running: " + process);
    }
    List<String> args =
        new ArrayList<>(
            List.of("server", "--data-dir", dataDir.toString(), "--listen", "0.0.0.0:" + PORT));
    if (config != null) {
      Path file = dataDir.resolveSibling(name + ".conf");
      try {
        Files.writeString(file, config);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      args.addAll(List.of("--config", file.toString()));
    }
    HostProcess p =
        Trellis.start(ns, "trellis-server-" + name + "-" + (runs.size() + 1), Map.of(), args);
    runs.add(p);
    process = p;
    p.awaitReady(
        "trellis server " + name + " listening",
        START_TIMEOUT,
        () -> p.output().contains("trellis server listening on"));
  }

  /**
   * SIGTERM to the server's PID; waits for it to exit and returns its exit status. Nothing if not
   * running.
   */
  public OptionalInt stop(Duration grace) {
    HostProcess p = process;
    if (p == null || !p.isAlive()) {
      return OptionalInt.empty();
    }
    OptionalInt exit = p.terminate(grace);
    if (exit.isEmpty()) {
      p.stop(); // SIGKILL after the harness's grace period
      throw new AssertionError(
          "trellis server did not exit within "
              + grace.toSeconds()
              + " s of SIGTERM:\n"
              + Commands.tail(p.output(), 40));
    }
    return exit;
  }

  /**
   * {@code trellis GROUP VERB --data-dir DIR ARGS...} in the server's namespace; never throws on
   * failure.
   */
  public CommandResult admin(String group, String verb, String... args) {
    List<String> argv = new ArrayList<>(List.of(group, verb, "--data-dir", dataDir.toString()));
    argv.addAll(List.of(args));
    return Trellis.run(ns, ADMIN_TIMEOUT, argv.toArray(String[]::new));
  }

  /**
   * {@code trellis GROUP VERB ARGS... --json}, parsed; an unreadable answer is an {@link
   * UncheckedIOException}.
   */
  public JsonNode json(String group, String verb, String... args) {
    List<String> argv = new ArrayList<>(List.of(args));
    argv.add("--json");
    String out = admin(group, verb, argv.toArray(String[]::new)).orThrow().stdout();
    try {
      return ControlJson.MAPPER.readTree(out);
    } catch (IOException e) {
      throw new UncheckedIOException(
          "not JSON: " + out, e); // unchecked: Await treats it as "not yet"
    }
  }

  /** Creates a reusable auth key for {@code user}; returns the key (the last line of stdout). */
  public String createReusableAuthKey(String user) {
    return lastLine(admin("authkeys", "create", "--user", user, "--reusable"));
  }

  /** Creates a reusable auth key for {@code user} whose nodes get {@code tag}; returns it. */
  public String createReusableAuthKey(String user, String tag) {
    return lastLine(admin("authkeys", "create", "--user", user, "--reusable", "--tag", tag));
  }

  /** Creates user {@code user} and a reusable auth key for it; returns the key. */
  public String userWithReusableKey(String user) {
    admin("users", "create", user).orThrow();
    return createReusableAuthKey(user);
  }

  /** Creates an admin API key; returns it. */
  public String createApiKey() {
    return lastLine(admin("apikeys", "create"));
  }

  private static String lastLine(CommandResult r) {
    return r.orThrow().stdout().strip().lines().toList().getLast().strip();
  }

  /** `trellis nodes list --json`. */
  public ArrayNode nodes() {
    return array(json("nodes", "list"));
  }

  /** `trellis users list --json`. */
  public ArrayNode users() {
    return array(json("users", "list"));
  }

  /** `trellis authkeys list --json`. */
  public ArrayNode authKeys() {
    return array(json("authkeys", "list"));
  }

  /**
   * The nodes list without presence (online, lastSeen, endpoints), sorted by id: what must survive
   * restarts.
   */
  public List<JsonNode> nodeState() {
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
  public JsonNode node(String hostname) {
    for (JsonNode n : nodes()) {
      if (hostname.equals(n.path("hostname").asText())) {
        return n;
      }
    }
    return null;
  }

  /** URL and API key the server wrote to its data directory's cli.json. */
  public LocalAdminAccess.Access access() {
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

  private static ArrayNode array(JsonNode node) {
    if (!(node instanceof ArrayNode a)) {
      throw new AssertionError("expected a JSON array, got: " + node);
    }
    return a;
  }

  /**
   * Teardown: SIGTERM, and SIGKILL (said on stderr) if it is still running after {@code grace};
   * never throws.
   */
  public void shutdown(Duration grace) {
    HostProcess p = process;
    if (p != null && p.isAlive() && p.terminate(grace).isEmpty()) {
      System.err.println(
          "[harness] "
              + this
              + " did not exit within "
              + grace.toSeconds()
              + " s of SIGTERM; killing it");
      p.stop();
    }
  }

  /** Every run's log tail and, while it runs, the nodes list. */
  public void dumpDiagnostics(PrintStream out) {
    for (HostProcess p : runs) {
      out.println("--- " + p + " alive=" + p.isAlive() + " log " + p.log() + " (tail):");
      out.println(Commands.tail(p.output(), 80));
    }
    if (running()) {
      CommandResult nodes = admin("nodes", "list");
      out.println("--- trellis nodes list (exit " + nodes.exitCode() + "):");
      out.println((nodes.stdout() + nodes.stderr()).strip());
    }
  }

  @Override
  public String toString() {
    return "trellis server " + name + " " + url() + " in " + ns;
  }
}
