package dev.trellis.control.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.dataplane.agent.ControlClient;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Control-plane scale benchmark (on demand, not a test): starts a real Trellis server in its own
 * JVM ({@code <home>/trellis server}), connects N protocol-level simulated nodes from this JVM
 * (each with its own machine key and {@link ControlClient}: JDK HttpClient + WebSocket over
 * loopback, Noise handshake, sealed JSON), and measures
 *
 * <ol>
 *   <li>registrations per second (one reusable auth key, bounded concurrency),
 *   <li>the time from a change (an admin rename, or one more node joining) until the last of the N
 *       connected nodes has received the MapDelta carrying it, and
 *   <li>the server's used heap after a full GC with N nodes connected, minus the same with none.
 * </ol>
 *
 * Run through {@code scripts/bench-control [N...]}. System properties: {@code bench.home} (repo
 * root), {@code bench.concurrency} (64), {@code bench.changes} (5 per kind), {@code
 * bench.httpClients} (4), {@code bench.serverOpts} (server JVM flags, default -Xmx4g), {@code
 * bench.out} (markdown file), {@code bench.keep} (keep server data/log directories), {@code
 * bench.registerBudgetSeconds} (stop starting registrations after this long and measure with the
 * nodes connected by then; 0 = no limit).
 */
public final class ControlPlaneBenchmark {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final PrintStream LOG = System.err;

  private final Path home;
  private final int concurrency;
  private final int changes;
  private final int httpClientCount;
  private final String serverOpts;
  private final boolean keep;
  private final Duration registerBudget;

  /** 0: one server on its embedded defaults; N: N replicas as one cluster over PostgreSQL. */
  private final int replicas = Integer.getInteger("bench.replicas", 0);

  /** The change currently being tracked; nodes count themselves in once when they see it. */
  private volatile Round round;

  private final AtomicLong lastMessageNanos = new AtomicLong(System.nanoTime());
  private final AtomicLong deltasReceived = new AtomicLong();
  private final AtomicLong goodbyes = new AtomicLong();
  private final AtomicLong closedUnexpectedly = new AtomicLong();
  private volatile boolean tearingDown;

  ControlPlaneBenchmark(
      Path home,
      int concurrency,
      int changes,
      int httpClientCount,
      String serverOpts,
      boolean keep,
      Duration registerBudget) {
    this.registerBudget = registerBudget;
    this.home = home;
    this.concurrency = concurrency;
    this.changes = changes;
    this.httpClientCount = httpClientCount;
    this.serverOpts = serverOpts;
    this.keep = keep;
  }

  public static void main(String[] args) throws Exception {
    Path home = Path.of(System.getProperty("bench.home", ".")).toAbsolutePath().normalize();
    List<Integer> sizes = new ArrayList<>();
    for (String a : args) {
      sizes.add(Integer.parseInt(a.replace("_", "").replace(",", "")));
    }
    if (sizes.isEmpty()) {
      sizes = List.of(100, 1000, 10000);
    }
    var bench =
        new ControlPlaneBenchmark(
            home,
            Integer.getInteger("bench.concurrency", 64),
            Integer.getInteger("bench.changes", 5),
            Integer.getInteger("bench.httpClients", 4),
            System.getProperty("bench.serverOpts", "-Xmx4g"),
            Boolean.getBoolean("bench.keep"),
            Duration.ofSeconds(Long.getLong("bench.registerBudgetSeconds", 0)));
    List<Result> results = new ArrayList<>();
    for (int n : sizes) {
      results.add(bench.run(n));
    }
    String table = table(results, bench);
    System.out.println(table);
    String out = System.getProperty("bench.out");
    if (out != null) {
      Files.writeString(Path.of(out), table);
    }
    System.exit(0);
  }

  // ---- one run -----------------------------------------------------------------------------

  record Result(
      int n,
      int connected,
      double registerSeconds,
      double registrationsPerSecond,
      double firstThousandPerSecond,
      double lastThousandPerSecond,
      List<Double> renameMs,
      List<Double> joinMs,
      List<Double> policyMs,
      int incompleteRounds,
      long heapBaseKiB,
      long heapConnectedKiB,
      long serverRssKiB,
      long clientHeapKiB,
      long failures,
      String note) {}

  Result run(int n) throws Exception {
    LOG.printf("%n=== N = %,d ===%n", n);
    tearingDown = false;
    closedUnexpectedly.set(0);
    goodbyes.set(0);
    deltasReceived.set(0);
    Path dataDir = Files.createTempDirectory("trellis-bench-");
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    // bench.replicas > 0: that many servers as one cluster over PostgreSQL, nodes spread over them.
    BenchCluster cluster = replicas > 0 ? BenchCluster.start(home, serverOpts, replicas) : null;
    Path serverConfig = null;
    if (!System.getProperty("bench.serverConfig", "").isBlank()) {
      serverConfig = dataDir.resolveSibling(dataDir.getFileName() + "-trellis.conf");
      Files.writeString(serverConfig, System.getProperty("bench.serverConfig"));
    }
    Process server =
        cluster != null
            ? cluster.servers.getFirst()
            : startServer(home, serverOpts, dataDir, port, serverConfig);
    List<SimNode> nodes = new ArrayList<>();
    List<HttpClient> clients = new ArrayList<>();
    ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
    try {
      String url = cluster != null ? cluster.urls.getFirst() : "http://127.0.0.1:" + port;
      Admin admin = cluster != null ? cluster.admin : awaitServer(server, dataDir, url);
      List<URI> uris =
          cluster != null
              ? cluster.urls.stream().map(URI::create).toList()
              : List.of(URI.create(url));
      admin.post("users", Map.of("name", "bench"));
      String authKey =
          admin.post("authkeys", Map.of("user", "bench", "reusable", true)).path("secret").asText();
      for (int i = 0; i < httpClientCount; i++) {
        clients.add(
            HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(ControlClient.CONNECT_TIMEOUT)
                .executor(executor)
                .build());
      }
      long heapBase = cluster != null ? cluster.heapUsedKiB() : heapUsedKiB(server.pid());
      LOG.printf(
          "server pid %d, used heap after full GC with 0 nodes: %,d KiB%n", server.pid(), heapBase);

      // (1) registrations
      URI uri = URI.create(url);
      Semaphore inFlight = new Semaphore(concurrency);
      AtomicInteger failures = new AtomicInteger();
      long[] doneAt = new long[n];
      AtomicInteger doneCount = new AtomicInteger();
      long start = System.nanoTime();
      List<CompletableFuture<Void>> all = new ArrayList<>(n);
      long budgetEnd = registerBudget.isZero() ? Long.MAX_VALUE : start + registerBudget.toNanos();
      for (int i = 0; i < n; i++) {
        inFlight.acquire();
        if (System.nanoTime() > budgetEnd) {
          inFlight.release();
          LOG.printf(
              "registration budget of %s used up after starting %,d of %,d: measuring with those%n",
              registerBudget, i, n);
          break;
        }
        SimNode node = new SimNode("bench-" + i, true);
        nodes.add(node);
        CompletableFuture<Void> f =
            node.register(clients.get(i % clients.size()), uris.get(i % uris.size()), authKey)
                .orTimeout(WAIT.toSeconds(), TimeUnit.SECONDS)
                .handle(
                    (ok, e) -> {
                      if (e != null) {
                        if (failures.incrementAndGet() <= 5) {
                          LOG.println("registration failed: " + ControlClient.describe(e));
                        }
                      } else {
                        doneAt[doneCount.getAndIncrement()] = System.nanoTime();
                      }
                      inFlight.release();
                      return null;
                    });
        all.add(f);
        if ((i + 1) % Math.max(1, n / 10) == 0) {
          LOG.printf(
              "  %,d/%,d started, %,d done, %.1f s%n",
              i + 1, n, doneCount.get(), (System.nanoTime() - start) / 1e9);
        }
      }
      CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).join();
      long end = System.nanoTime();
      int connected = doneCount.get();
      double seconds = (end - start) / 1e9;
      double rate = connected / seconds;
      long[] done = Arrays.copyOf(doneAt, connected);
      Arrays.sort(done);
      double first = Double.NaN;
      double last = Double.NaN;
      if (connected >= 2000) {
        first = 1000 / ((done[999] - start) / 1e9);
        last = 1000 / ((done[connected - 1] - done[connected - 1001]) / 1e9);
      }
      LOG.printf(
          "registered %,d of %,d in %.1f s: %.0f/s (failures %d)%n",
          connected, n, seconds, rate, failures.get());

      LOG.printf(
          "per registration, median / p90 ms: connect+handshake %s, login→LoginResult %s, LoginResult→FullMap %s%n",
          phase(nodes, 0, 1), phase(nodes, 1, 2), phase(nodes, 2, 3));
      awaitQuiet(Duration.ofSeconds(2), Duration.ofMinutes(5));
      long stillOpen = nodes.stream().filter(SimNode::isOpen).count();
      LOG.printf(
          "quiet; %,d sessions open, %,d deltas so far, %d goodbyes, %d closed unexpectedly%n",
          stillOpen, deltasReceived.get(), goodbyes.get(), closedUnexpectedly.get());

      // (3) heap with N connected
      long heapN = cluster != null ? cluster.heapUsedKiB() : heapUsedKiB(server.pid());
      long rss =
          cluster != null
              ? cluster.servers.stream().mapToLong(p -> rssKiB(p.pid())).sum()
              : rssKiB(server.pid());
      long clientHeap = clientHeapKiB();
      LOG.printf(
          "server used heap after full GC: %,d KiB (%.1f KiB/node), RSS %,d KiB; this JVM's heap %,d KiB%n",
          heapN, (heapN - heapBase) / (double) Math.max(1, stillOpen), rss, clientHeap);

      // (2b) idle: what metrics and quality reports cost the server with N nodes connected.
      int idleSeconds = Integer.getInteger("bench.idleSeconds", 0);
      if (idleSeconds > 0 && cluster == null) {
        idle(server.pid(), nodes, idleSeconds);
      }

      // (2) change -> delivered to all
      List<SimNode> counted = nodes.stream().filter(SimNode::isOpen).toList();
      List<Double> renames = new ArrayList<>();
      List<Double> joins = new ArrayList<>();
      int incomplete = 0;
      for (int k = 0; k < changes; k++) {
        SimNode target = counted.get((int) ((long) k * counted.size() / changes));
        String name = "renamed-" + k;
        Double ms =
            measureRound(
                name,
                counted.size(),
                () -> admin.post("nodes/" + target.id + "/rename", Map.of("name", name)));
        if (ms == null) incomplete++;
        else renames.add(ms);
        Thread.sleep(1000);
      }
      for (int k = 0; k < changes; k++) {
        String name = "joiner-" + k;
        SimNode joiner = new SimNode(name, false);
        nodes.add(joiner);
        HttpClient http = clients.get(k % clients.size());
        URI joinVia = uris.get(k % uris.size());
        Double ms =
            measureRound(
                name,
                counted.size(),
                () ->
                    joiner
                        .register(http, joinVia, authKey)
                        .get(WAIT.toSeconds(), TimeUnit.SECONDS));
        if (ms == null) incomplete++;
        else joins.add(ms);
        Thread.sleep(1000);
      }
      // (3) policy set -> every node has its new packet filter (and its new map): policies that
      // split the overlay's first /22 into blocks that only see themselves, a different size each.
      List<Double> policies = new ArrayList<>();
      for (int k = 0; k < changes; k++) {
        int bits = 25 + k % 3;
        Double ms =
            measureRound(
                new Round("/" + bits, counted.size(), true),
                () -> admin.send("PUT", "policy", Map.of("policy", blockPolicy(bits))));
        if (ms == null) incomplete++;
        else policies.add(ms);
        Thread.sleep(1000);
      }
      LOG.printf(
          "rename -> all: %s ms; join -> all: %s ms; policy -> all: %s ms%n",
          renames, joins, policies);
      String note = "";
      if (stillOpen < n) {
        note = (n - stillOpen) + " of " + n + " sessions not connected";
      }
      return new Result(
          n,
          (int) stillOpen,
          seconds,
          rate,
          first,
          last,
          renames,
          joins,
          policies,
          incomplete,
          heapBase,
          heapN,
          rss,
          clientHeap,
          failures.get(),
          note);
    } finally {
      round = null;
      tearingDown = true;
      for (SimNode node : nodes) {
        node.abort();
      }
      if (cluster != null) {
        cluster.close();
      } else {
        server.destroy();
        if (!server.waitFor(30, TimeUnit.SECONDS)) {
          server.destroyForcibly();
          server.waitFor(10, TimeUnit.SECONDS);
        }
      }
      clients.forEach(HttpClient::close);
      executor.shutdownNow();
      if (!keep) {
        deleteTree(dataDir);
      } else {
        LOG.println("kept " + dataDir);
      }
    }
  }

  private static String phase(List<SimNode> nodes, int from, int to) {
    double[] ms =
        nodes.stream()
            .filter(n -> n.phases[from] != 0 && n.phases[to] != 0)
            .mapToDouble(n -> (n.phases[to] - n.phases[from]) / 1e6)
            .sorted()
            .toArray();
    if (ms.length == 0) return "n/a";
    return String.format(
        Locale.ROOT, "%.0f / %.0f", ms[ms.length / 2], ms[(int) (ms.length * 0.9)]);
  }

  interface Change {
    void run() throws Exception;
  }

  /**
   * A policy of {@code 2^(32-bits)}-address blocks of 100.64.0.0/22, each reaching only itself:
   * every node's filter and map change when the block size does.
   */
  static String blockPolicy(int bits) {
    StringBuilder acls = new StringBuilder();
    int size = 1 << (32 - bits);
    for (int start = 0; start < 1024; start += size) {
      String block = "100.64." + start / 256 + "." + start % 256 + "/" + bits;
      acls.append(acls.isEmpty() ? "" : ",\n")
          .append("{\"action\": \"accept\", \"src\": [\"")
          .append(block)
          .append("\"], \"dst\": [\"")
          .append(block)
          .append(":*\"]}");
    }
    return "{\"acls\": [\n" + acls + "\n]}\n";
  }

  /** Runs the change and waits until {@code expected} nodes saw a delta carrying {@code marker}. */
  private Double measureRound(String marker, int expected, Change change) throws Exception {
    return measureRound(new Round(marker, expected, false), change);
  }

  /** Runs the change and waits until the round's nodes have all seen it. */
  private Double measureRound(Round r, Change change) throws Exception {
    String marker = r.marker;
    int expected = r.remaining.get();
    round = r;
    long t0 = System.nanoTime();
    change.run();
    boolean all = r.latch.await(WAIT.toSeconds(), TimeUnit.SECONDS);
    round = null;
    if (!all) {
      LOG.printf(
          "  %s: only %,d of %,d nodes saw it within %s%n",
          marker, expected - r.remaining.get(), expected, WAIT);
      return null;
    }
    double ms = (r.last.get() - t0) / 1e6;
    LOG.printf(
        "  %s: last of %,d nodes after %.1f ms (first after %.1f ms)%n",
        marker, expected, ms, (r.first.get() - t0) / 1e6);
    return ms;
  }

  static final class Round {
    final String marker;
    final AtomicInteger remaining;
    final AtomicLong first = new AtomicLong(Long.MAX_VALUE);
    final AtomicLong last = new AtomicLong();
    final CountDownLatch latch = new CountDownLatch(1);

    /** Whether the marker is looked for in packet filters (a prefix length) rather than deltas. */
    final boolean filter;

    Round(String marker, int expected, boolean filter) {
      this.marker = marker;
      this.remaining = new AtomicInteger(expected);
      this.filter = filter;
    }

    boolean carriedBy(ControlMessage.PacketFilter f) {
      if (!filter || f.rules() == null) return false;
      for (ControlMessage.FilterRule rule : f.rules()) {
        for (String src : rule.srcs()) {
          if (src.endsWith(marker)) return true;
        }
      }
      return false;
    }

    void arrived(long now) {
      first.accumulateAndGet(now, Math::min);
      last.accumulateAndGet(now, Math::max);
      if (remaining.decrementAndGet() == 0) {
        latch.countDown();
      }
    }

    boolean carriedBy(ControlMessage.MapDelta d) {
      if (filter) return false;
      if (d.self() != null && marker.equals(d.self().hostname())) {
        return true;
      }
      for (ControlMessage.NodeInfo n : d.upserted()) {
        if (marker.equals(n.hostname())) {
          return true;
        }
      }
      return false;
    }
  }

  /** A node speaking the protocol, without a WireGuard device; it only counts and timestamps. */
  final class SimNode implements ControlClient.Listener {
    final String hostname;
    final boolean counted;
    final byte[] machineKey = Curve25519.generatePrivateKey();
    final String nodeKey =
        Base64.getEncoder().encodeToString(Curve25519.publicKey(Curve25519.generatePrivateKey()));
    final CompletableFuture<Void> registered = new CompletableFuture<>();
    volatile ControlClient client;
    volatile long id = -1;

    /** nanoTime of: connect called, handshake done, LoginResult, FullMap. */
    final long[] phases = new long[4];

    private Round seen;

    SimNode(String hostname, boolean counted) {
      this.hostname = hostname;
      this.counted = counted;
    }

    CompletableFuture<Void> register(HttpClient http, URI server, String authKey) {
      phases[0] = System.nanoTime();
      return ControlClient.connect(http, server, machineKey, this)
          .thenCompose(
              c -> {
                phases[1] = System.nanoTime();
                client = c;
                c.send(
                    new ControlMessage.Login(
                        nodeKey, authKey, hostname, "linux", List.of("198.51.100.1:41641")));
                return registered;
              });
    }

    boolean isOpen() {
      ControlClient c = client;
      return c != null
          && c.isOpen()
          && registered.isDone()
          && !registered.isCompletedExceptionally();
    }

    @Override
    public void onMessage(ControlMessage message) {
      long now = System.nanoTime();
      lastMessageNanos.accumulateAndGet(now, Math::max);
      switch (message) {
        case ControlMessage.LoginResult r -> {
          phases[2] = now;
          if (r.ok()) {
            id = r.self().id();
          } else {
            registered.completeExceptionally(
                new IOException("login refused: " + r.code() + " " + r.error()));
          }
        }
        case ControlMessage.FullMap f -> {
          phases[3] = now;
          registered.complete(null);
        }
        case ControlMessage.MapDelta d -> {
          deltasReceived.incrementAndGet();
          Round r = round;
          if (counted && r != null && seen != r && r.carriedBy(d)) {
            seen = r;
            r.arrived(now);
          }
        }
        case ControlMessage.PacketFilter f -> {
          Round r = round;
          if (counted && r != null && seen != r && r.carriedBy(f)) {
            seen = r;
            r.arrived(now);
          }
        }
        case ControlMessage.Goodbye g -> goodbyes.incrementAndGet();
        default -> {}
      }
    }

    @Override
    public void onClosed(String reason) {
      if (!registered.isDone()) {
        registered.completeExceptionally(new IOException("closed: " + reason));
      } else if (!tearingDown && !reason.equals("closed by the node")) {
        if (closedUnexpectedly.incrementAndGet() <= 5) {
          LOG.println("session of " + hostname + " closed: " + reason);
        }
      }
    }

    void abort() {
      ControlClient c = client;
      if (c != null) {
        c.close();
      }
    }
  }

  private void awaitQuiet(Duration quiet, Duration max) throws InterruptedException {
    long deadline = System.nanoTime() + max.toNanos();
    while (System.nanoTime() < deadline) {
      if (System.nanoTime() - lastMessageNanos.get() > quiet.toNanos()) {
        return;
      }
      Thread.sleep(200);
    }
    LOG.println("messages still arriving after " + max);
  }

  // ---- the server process ------------------------------------------------------------------

  static Process startServer(Path home, String serverOpts, Path dataDir, int port)
      throws IOException {
    return startServer(home, serverOpts, dataDir, port, null);
  }

  /**
   * {@code trellis server} in its own JVM, with {@code config} (null: none) as its --config file.
   */
  static Process startServer(Path home, String serverOpts, Path dataDir, int port, Path config)
      throws IOException {
    List<String> command =
        new ArrayList<>(
            List.of(
                home.resolve("trellis").toString(),
                "server",
                "--data-dir",
                dataDir.toString(),
                "--listen",
                "127.0.0.1:" + port));
    if (config != null) {
      command.addAll(List.of("--config", config.toString()));
    }
    ProcessBuilder pb = new ProcessBuilder(command);
    pb.environment().put("TRELLIS_JAVA_OPTS", serverOpts);
    pb.redirectErrorStream(true);
    pb.redirectOutput(dataDir.resolve("server.log").toFile());
    Process p = pb.start();
    LOG.printf(
        "server: %s (TRELLIS_JAVA_OPTS=%s), log %s%n",
        String.join(" ", pb.command()), serverOpts, dataDir.resolve("server.log"));
    return p;
  }

  static Admin awaitServer(Process server, Path dataDir, String url) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    HttpClient http =
        HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5))
            .build();
    Path cli = dataDir.resolve("cli.json");
    while (System.nanoTime() < deadline) {
      if (!server.isAlive()) {
        throw new IOException(
            "server exited with " + server.exitValue() + "; see " + dataDir.resolve("server.log"));
      }
      if (Files.exists(cli)) {
        try {
          JsonNode access = ControlJson.MAPPER.readTree(cli.toFile());
          HttpResponse<String> key =
              http.send(
                  HttpRequest.newBuilder(URI.create(url + "/key")).build(),
                  HttpResponse.BodyHandlers.ofString());
          if (key.statusCode() == 200 && access.hasNonNull("apiKey")) {
            return new Admin(http, url, access.get("apiKey").asText());
          }
        } catch (IOException e) {
          // not ready yet
        }
      }
      Thread.sleep(100);
    }
    throw new IOException("server did not come up in 120 s; see " + dataDir.resolve("server.log"));
  }

  record Admin(HttpClient http, String url, String apiKey) {
    JsonNode post(String path, Map<String, ?> body) throws Exception {
      return send("POST", path, body);
    }

    JsonNode send(String method, String path, Map<String, ?> body) throws Exception {
      HttpRequest request =
          HttpRequest.newBuilder(URI.create(url + "/api/v1/" + path))
              .header("Authorization", "Bearer " + apiKey)
              .header("Content-Type", "application/json")
              .timeout(WAIT)
              .method(
                  method,
                  HttpRequest.BodyPublishers.ofByteArray(
                      ControlJson.MAPPER.writeValueAsBytes(body)))
              .build();
      HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
      if (response.statusCode() / 100 != 2) {
        throw new IOException(
            method + " " + path + " answered " + response.statusCode() + ": " + response.body());
      }
      return ControlJson.MAPPER.readTree(response.body());
    }
  }

  // ---- measurements ------------------------------------------------------------------------

  private static final Pattern USED = Pattern.compile("\\bused (\\d+)K");

  /** Used heap of the server JVM after two full collections, from {@code jcmd GC.heap_info}. */
  static long heapUsedKiB(long pid) throws Exception {
    jcmd(pid, "GC.run");
    jcmd(pid, "GC.run");
    String info = jcmd(pid, "GC.heap_info");
    Matcher m = USED.matcher(info);
    if (!m.find()) {
      throw new IOException("cannot read used heap from jcmd GC.heap_info:\n" + info);
    }
    return Long.parseLong(m.group(1));
  }

  private static String jcmd(long pid, String command) throws Exception {
    Path jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd");
    Process p =
        new ProcessBuilder(jcmd.toString(), Long.toString(pid), command)
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IOException("jcmd " + pid + " " + command + " failed:\n" + out);
    }
    return out;
  }

  /**
   * {@code seconds} of idle with every node connected: the server's CPU (utime + stime from /proc,
   * of one core) and, after, its used heap. {@code bench.qualityPeers} > 0: each node sends a
   * QualityReport of that many peers once a minute, as agents do (first ones staggered over the
   * minute). {@code bench.scrapeSeconds} > 0: /metrics on 127.0.0.1:{@code bench.metricsPort} is
   * scraped that often, as Prometheus would.
   */
  private void idle(long pid, List<SimNode> nodes, int seconds) throws Exception {
    int qualityPeers = Integer.getInteger("bench.qualityPeers", 0);
    int scrapeSeconds = Integer.getInteger("bench.scrapeSeconds", 0);
    int metricsPort = Integer.getInteger("bench.metricsPort", 9090);
    List<SimNode> open = nodes.stream().filter(SimNode::isOpen).toList();
    java.util.concurrent.ScheduledExecutorService timers =
        Executors.newScheduledThreadPool(2, Thread.ofPlatform().daemon().factory());
    AtomicLong reports = new AtomicLong();
    AtomicLong scrapes = new AtomicLong();
    AtomicLong scrapeBytes = new AtomicLong();
    java.util.Random random = new java.util.Random(1);
    if (qualityPeers > 0) {
      for (SimNode n : open) {
        List<ControlMessage.PeerQuality> peers = new ArrayList<>();
        for (int k = 0; k < qualityPeers; k++) {
          SimNode peer = open.get(random.nextInt(open.size()));
          peers.add(
              new ControlMessage.PeerQuality(
                  peer.id,
                  k % 2 == 0 ? "direct" : "relay",
                  k % 2 == 0 ? null : "default",
                  1 + random.nextDouble() * 10,
                  random.nextDouble(),
                  0.0));
        }
        ControlMessage.QualityReport report = new ControlMessage.QualityReport(peers);
        timers.scheduleAtFixedRate(
            () -> {
              ControlClient c = n.client;
              if (c != null && c.isOpen()) {
                c.send(report);
                reports.incrementAndGet();
              }
            },
            random.nextInt(60_000),
            60_000,
            TimeUnit.MILLISECONDS);
      }
    }
    if (scrapeSeconds > 0) {
      HttpClient http = HttpClient.newHttpClient();
      URI metrics = URI.create("http://127.0.0.1:" + metricsPort + "/metrics");
      timers.scheduleAtFixedRate(
          () -> {
            try {
              HttpResponse<byte[]> r =
                  http.send(
                      java.net.http.HttpRequest.newBuilder(metrics).build(),
                      HttpResponse.BodyHandlers.ofByteArray());
              scrapes.incrementAndGet();
              scrapeBytes.addAndGet(r.body().length);
            } catch (Exception e) {
              LOG.printf("scrape failed: %s%n", e);
            }
          },
          0,
          scrapeSeconds,
          TimeUnit.SECONDS);
    }
    double cpuBefore = cpuSeconds(pid);
    long t0 = System.nanoTime();
    Thread.sleep(seconds * 1000L);
    double cpu = cpuSeconds(pid) - cpuBefore;
    double wall = (System.nanoTime() - t0) / 1e9;
    timers.shutdownNow();
    long heap = heapUsedKiB(pid);
    LOG.printf(
        Locale.ROOT,
        "idle %d s with %,d nodes (quality peers %d, scrape every %d s): server CPU %.2f %% of a"
            + " core (%.1f s), %,d reports, %,d scrapes of %,d bytes; used heap after GC %,d KiB,"
            + " RSS %,d KiB%n",
        seconds,
        open.size(),
        qualityPeers,
        scrapeSeconds,
        100 * cpu / wall,
        cpu,
        reports.get(),
        scrapes.get(),
        scrapes.get() == 0 ? 0 : scrapeBytes.get() / scrapes.get(),
        heap,
        rssKiB(pid));
  }

  /** utime + stime of a process, in seconds (Linux, 100 ticks a second). */
  static double cpuSeconds(long pid) throws IOException {
    String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
    String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0;
  }

  static long rssKiB(long pid) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
        if (line.startsWith("VmRSS:")) {
          return Long.parseLong(line.replaceAll("\\D", ""));
        }
      }
    } catch (IOException | NumberFormatException e) {
      // not Linux
    }
    return -1;
  }

  static long clientHeapKiB() {
    System.gc();
    System.gc();
    return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed() / 1024;
  }

  static void deleteTree(Path dir) throws IOException {
    try (Stream<Path> paths = Files.walk(dir)) {
      for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }

  // ---- report ------------------------------------------------------------------------------

  static double median(List<Double> values) {
    if (values.isEmpty()) return Double.NaN;
    List<Double> sorted = values.stream().sorted().toList();
    int m = sorted.size() / 2;
    return sorted.size() % 2 == 1 ? sorted.get(m) : (sorted.get(m - 1) + sorted.get(m)) / 2;
  }

  static double max(List<Double> values) {
    return values.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN);
  }

  static String table(List<Result> results, ControlPlaneBenchmark b) {
    StringBuilder s = new StringBuilder();
    s.append(
        String.format(
            Locale.ROOT,
            "%nServer JVM: %s; %s; %d simulated-node HttpClients; %d registrations in flight; %d changes of each kind%n%n",
            b.serverOpts,
            b.replicas > 0
                ? b.replicas
                    + " replica(s) as one cluster over PostgreSQL, nodes and joins spread"
                    + " over them, heap and RSS summed"
                : "one server on its embedded defaults (LevelDB)",
            b.httpClientCount,
            b.concurrency,
            b.changes));
    s.append(
        "| N | connected | register all (s) | reg/s | reg/s first 1k / last 1k | rename→all median / max (ms) | join→all median / max (ms) | policy→all filters median / max (ms) | heap 0 nodes (MiB) | heap N nodes (MiB) | heap/node (KiB) | server RSS (MiB) |\n");
    s.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (Result r : results) {
      String firstLast =
          Double.isNaN(r.firstThousandPerSecond())
              ? ""
              : String.format(
                  Locale.ROOT,
                  "%.0f / %.0f",
                  r.firstThousandPerSecond(),
                  r.lastThousandPerSecond());
      s.append(
          String.format(
              Locale.ROOT,
              "| %,d | %,d | %.1f | %.0f | %s | %s | %s | %s | %.0f | %.0f | %.1f | %.0f |%n",
              r.n(),
              r.connected(),
              r.registerSeconds(),
              r.registrationsPerSecond(),
              firstLast,
              pair(r.renameMs()),
              pair(r.joinMs()),
              pair(r.policyMs()),
              r.heapBaseKiB() / 1024.0,
              r.heapConnectedKiB() / 1024.0,
              (r.heapConnectedKiB() - r.heapBaseKiB()) / (double) Math.max(1, r.connected()),
              r.serverRssKiB() / 1024.0));
    }
    for (Result r : results) {
      List<String> notes = new ArrayList<>();
      if (!r.note().isEmpty()) notes.add(r.note());
      if (r.failures() > 0) notes.add(r.failures() + " registrations failed");
      if (r.incompleteRounds() > 0)
        notes.add(
            r.incompleteRounds()
                + " changes did not reach every node within "
                + WAIT.toSeconds()
                + " s");
      notes.add(
          String.format(
              Locale.ROOT, "benchmark JVM heap after GC %,.0f MiB", r.clientHeapKiB() / 1024.0));
      notes.add(
          "rename ms "
              + fmt(r.renameMs())
              + ", join ms "
              + fmt(r.joinMs())
              + ", policy ms "
              + fmt(r.policyMs()));
      s.append(String.format(Locale.ROOT, "%nN=%,d: %s", r.n(), String.join("; ", notes)));
    }
    s.append('\n');
    return s.toString();
  }

  private static String pair(List<Double> values) {
    return values.isEmpty()
        ? "n/a"
        : String.format(Locale.ROOT, "%.0f / %.0f", median(values), max(values));
  }

  private static String fmt(List<Double> values) {
    return values.stream().map(v -> String.format(Locale.ROOT, "%.0f", v)).toList().toString();
  }
}
