package dev.trellis.control.bench;

import dev.trellis.dataplane.agent.ControlClient;
import dev.trellis.dataplane.relay.RelayClient;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.function.IntFunction;

/**
 * One relay's capacity ({@code scripts/bench-relay}): a real {@code trellis server} in its own JVM
 * and simulated nodes in this one (registered over the control channel, then connected to the relay
 * with {@link RelayClient}, the agent's own relay client). Four measurements:
 *
 * <ul>
 *   <li><b>rtt</b>: one packet at a time from node A through the relay to B, which sends it
 *       straight back; median and p99 of 5,000 round trips (after 2,000 for warm-up);
 *   <li><b>pps</b>: P sender→receiver pairs, each sender offering SIZE-byte packets as fast as its
 *       send queue takes them for SECONDS; the receivers' count is what the relay forwarded;
 *   <li><b>fair</b>: one sender floods while a second pair sends too: each pair's share of the
 *       relay, and the second pair's round trips with and without the flood;
 *   <li><b>idle</b>: N nodes each holding an idle relay connection; the server's used heap after
 *       full GCs, before and after, and its RSS.
 * </ul>
 *
 * Both JVMs share the machine: the pps figure is what one relay plus its senders and receivers
 * manage on it.
 */
public final class RelayBenchmark {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final PrintStream LOG = System.err;
  private static final RelayClient.Transport TRANSPORT =
      RelayClient.Transport.valueOf(
          System.getProperty("bench.transport", "AUTO").toUpperCase(Locale.ROOT));

  private final Path home =
      Path.of(System.getProperty("bench.home", ".")).toAbsolutePath().normalize();
  private final String serverOpts = System.getProperty("bench.serverOpts", "-Xmx2g");
  private final List<HttpClient> https = new ArrayList<>();
  private final ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
  private URI url;
  private String authKey;

  public static void main(String[] args) throws Exception {
    List<String> modes = args.length == 0 ? List.of("rtt", "pps", "idle") : List.of(args);
    RelayBenchmark bench = new RelayBenchmark();
    StringBuilder out = new StringBuilder();
    for (String mode : modes) {
      out.append(
              switch (mode) {
                case "rtt" -> bench.inFreshServer(bench::rtt);
                case "pps" -> bench.inFreshServer(bench::pps);
                case "fair" -> bench.inFreshServer(bench::fair);
                case "idle" -> bench.inFreshServer(bench::idle);
                case "mesh" -> bench.mesh();
                default ->
                    throw new IllegalArgumentException(
                        "unknown mode " + mode + " (rtt, pps, fair, idle, mesh)");
              })
          .append('\n');
    }
    System.out.println(out);
    String file = System.getProperty("bench.out");
    if (file != null) {
      Files.writeString(Path.of(file), out);
    }
    System.exit(0);
  }

  interface Run {
    String run(Process server) throws Exception;
  }

  private String inFreshServer(Run run) throws Exception {
    Path dataDir = Files.createTempDirectory("trellis-relay-bench-");
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    Process server = ControlPlaneBenchmark.startServer(home, serverOpts, dataDir, port);
    try {
      String base = "http://127.0.0.1:" + port;
      ControlPlaneBenchmark.Admin admin = ControlPlaneBenchmark.awaitServer(server, dataDir, base);
      admin.post("users", Map.of("name", "bench"));
      authKey =
          admin.post("authkeys", Map.of("user", "bench", "reusable", true)).path("secret").asText();
      url = URI.create(base);
      for (int i = https.size(); i < 4; i++) {
        https.add(
            HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(ControlClient.CONNECT_TIMEOUT)
                .executor(executor)
                .build());
      }
      return run.run(server);
    } finally {
      server.destroy();
      if (!server.waitFor(30, TimeUnit.SECONDS)) {
        server.destroyForcibly();
      }
      ControlPlaneBenchmark.deleteTree(dataDir);
    }
  }

  /**
   * A registered node (its control session closed again: the registration outlives it) and its
   * relay connection.
   */
  final class SimNode implements RelayClient.Listener {
    final byte[] nodePrivate = Curve25519.generatePrivateKey();
    final byte[] nodeKey = Curve25519.publicKey(nodePrivate);
    final AtomicLong received = new AtomicLong();

    /** The server it registers with and whose relay it connects to. */
    URI home = url;

    volatile RelayClient relay;
    volatile PacketHandler handler;

    CompletableFuture<SimNode> register(int i) {
      CompletableFuture<SimNode> done = new CompletableFuture<>();
      ControlClient.Listener listener =
          new ControlClient.Listener() {
            @Override
            public void onMessage(ControlMessage m) {
              if (m instanceof ControlMessage.LoginResult r && !r.ok()) {
                done.completeExceptionally(new IOException("login refused: " + r.error()));
              } else if (m instanceof ControlMessage.FullMap) {
                done.complete(SimNode.this);
              }
            }

            @Override
            public void onClosed(String reason) {
              done.completeExceptionally(new IOException("control session closed: " + reason));
            }
          };
      return ControlClient.connect(
              https.get(i % https.size()), home, Curve25519.generatePrivateKey(), listener)
          .thenCompose(
              c -> {
                c.send(
                    new ControlMessage.Login(
                        Base64.getEncoder().encodeToString(nodeKey),
                        authKey,
                        "relay-bench-" + i,
                        "linux",
                        List.of()));
                return done.whenComplete((n, e) -> c.close());
              });
    }

    CompletableFuture<SimNode> connectRelay(int i) {
      return RelayClient.connect(
              https.get(i % https.size()), home, nodePrivate, null, this, TRANSPORT)
          .thenApply(
              c -> {
                relay = c;
                return this;
              });
    }

    @Override
    public void onPacket(byte[] srcKey, byte[] packet, int len) {
      received.incrementAndGet();
      PacketHandler h = handler;
      if (h != null) {
        h.onPacket(packet, len);
      }
    }

    @Override
    public void onClosed(String reason) {}
  }

  interface PacketHandler {
    void onPacket(byte[] packet, int len);
  }

  private List<SimNode> nodes(int n, boolean relay) throws Exception {
    return nodes(n, relay, i -> url);
  }

  private List<SimNode> nodes(int n, boolean relay, IntFunction<URI> homeOf) throws Exception {
    Semaphore inFlight = new Semaphore(Integer.getInteger("bench.inFlight", 64));
    List<CompletableFuture<SimNode>> all = new ArrayList<>();
    long start = System.nanoTime();
    for (int i = 0; i < n; i++) {
      inFlight.acquire();
      int k = i;
      SimNode node = new SimNode();
      node.home = homeOf.apply(k);
      all.add(
          node.register(k)
              .thenCompose(
                  x -> relay ? node.connectRelay(k) : CompletableFuture.completedFuture(node))
              .orTimeout(WAIT.toSeconds(), TimeUnit.SECONDS)
              .whenComplete((x, e) -> inFlight.release()));
      if ((i + 1) % Math.max(1, n / 10) == 0) {
        LOG.printf(
            "  %,d/%,d nodes started, %.1f s%n", i + 1, n, (System.nanoTime() - start) / 1e9);
      }
    }
    List<SimNode> nodes = new ArrayList<>();
    for (CompletableFuture<SimNode> f : all) {
      nodes.add(f.get());
    }
    LOG.printf(
        "%,d nodes registered%s in %.1f s%n",
        n, relay ? " and on the relay" : "", (System.nanoTime() - start) / 1e9);
    return nodes;
  }

  // ---- rtt ------------------------------------------------------------------------------------

  private String rtt(Process server) throws Exception {
    int size = Integer.getInteger("bench.size", 1400);
    List<SimNode> pair = nodes(2, true);
    int gapMillis = Integer.getInteger("bench.gapMs", 0);
    long[] samples =
        roundTrips(pair.get(0), pair.get(1), size, gapMillis == 0 ? 5000 : 300, gapMillis);
    String row =
        String.format(
            Locale.ROOT,
            "relay round trip ("
                + TRANSPORT.name().toLowerCase(Locale.ROOT)
                + "), %d-byte packets %s, node→relay→node and back: median %.1f µs, p90 %.1f µs, p99 %.1f µs",
            size,
            gapMillis == 0 ? "back to back" : gapMillis + " ms apart",
            samples[samples.length / 2] / 1e3,
            samples[samples.length * 9 / 10] / 1e3,
            samples[samples.length * 99 / 100] / 1e3);
    LOG.println(row);
    return row;
  }

  /** {@code count} sorted round trips a → b → a (b echoes), after 2,000 unmeasured ones. */
  private static long[] roundTrips(SimNode a, SimNode b, int size, int count, int gapMillis)
      throws Exception {
    byte[] packet = new byte[size];
    b.handler = (p, len) -> b.relay.send(a.nodeKey, p, 0, len);
    Semaphore back = new Semaphore(0);
    a.handler = (p, len) -> back.release();
    long[] samples = new long[count];
    for (int i = -2000; i < samples.length; i++) {
      if (gapMillis > 0 && i >= 0) {
        Thread.sleep(gapMillis);
      }
      long t = System.nanoTime();
      a.relay.send(b.nodeKey, packet, 0, size);
      if (!back.tryAcquire(5, TimeUnit.SECONDS)) {
        throw new IOException("no echo within 5 s");
      }
      if (i >= 0) {
        samples[i] = System.nanoTime() - t;
      }
    }
    Arrays.sort(samples);
    a.handler = null;
    b.handler = null;
    return samples;
  }

  // ---- mesh -----------------------------------------------------------------------------------

  /**
   * Relays as a cluster ({@link BenchCluster}: 1, 2, 3 servers, shared PostgreSQL): pairs spread
   * over the relays, both ends on one relay ("same relay") or on neighbouring ones ("cross-relay",
   * one mesh hop), aggregate packets/s; idle connections spread over the relays, heap per
   * connection; with two relays, round trips same-relay vs cross-relay in the same cluster.
   */
  private String mesh() throws Exception {
    int size = Integer.getInteger("bench.size", 1400);
    int seconds = Integer.getInteger("bench.seconds", 10);
    int pairs = Integer.getInteger("bench.meshPairs", 6);
    int idle = Integer.getInteger("bench.meshIdle", 1500);
    StringBuilder out =
        new StringBuilder(
            "transport: "
                + TRANSPORT.name().toLowerCase(Locale.ROOT)
                + ", "
                + size
                + "-byte packets, "
                + pairs
                + " pairs, "
                + seconds
                + " s per row\n\n"
                + "| relays | pairs | forwarded pkt/s | MB/s forwarded | dropped by senders' queues |\n|---|---|---|---|---|\n");
    StringBuilder idleRows =
        new StringBuilder(
            "\n| relays | idle connections held | per relay | heap per connection (sum over relays) |\n|---|---|---|---|\n");
    StringBuilder rttRows = new StringBuilder();
    for (String k : System.getProperty("bench.relays", "1,2,3").split(",")) {
      int relays = Integer.parseInt(k.strip());
      LOG.printf("%n=== %d relay(s) ===%n", relays);
      try (BenchCluster cluster = BenchCluster.start(home, serverOpts, relays)) {
        cluster.admin.post("users", Map.of("name", "bench"));
        authKey =
            cluster
                .admin
                .post("authkeys", Map.of("user", "bench", "reusable", true))
                .path("secret")
                .asText();
        url = URI.create(cluster.urls.getFirst());
        for (int i = https.size(); i < 4; i++) {
          https.add(
              HttpClient.newBuilder()
                  .version(HttpClient.Version.HTTP_1_1)
                  .connectTimeout(ControlClient.CONNECT_TIMEOUT)
                  .executor(executor)
                  .build());
        }
        // Same relay: sender i and receiver i both on relay i % relays.
        List<SimNode> same =
            nodes(2 * pairs, true, i -> URI.create(cluster.urls.get((i % pairs) % relays)));
        out.append(
            meshRow(
                relays,
                "same relay",
                same.subList(0, pairs),
                same.subList(pairs, 2 * pairs),
                size,
                seconds));
        if (relays >= 2) {
          // Cross-relay: receiver i on the next relay, so every packet crosses one mesh hop.
          List<SimNode> cross =
              nodes(
                  2 * pairs,
                  true,
                  i -> URI.create(cluster.urls.get((i < pairs ? i : i - pairs + 1) % relays)));
          out.append(
              meshRow(
                  relays,
                  "cross-relay",
                  cross.subList(0, pairs),
                  cross.subList(pairs, 2 * pairs),
                  size,
                  seconds));
          if (relays == 2) {
            long[] sameRtt = roundTrips(same.get(0), same.get(pairs), size, 3000, 0);
            long[] crossRtt = roundTrips(cross.get(0), cross.get(pairs), size, 3000, 0);
            rttRows.append(
                String.format(
                    Locale.ROOT,
                    "%nround trip node→relay→node and back, %d-byte packets back to back, two relays,"
                        + " same run: same relay median %.1f µs (p90 %.1f); cross-relay median %.1f µs (p90 %.1f)%n",
                    size,
                    sameRtt[sameRtt.length / 2] / 1e3,
                    sameRtt[sameRtt.length * 9 / 10] / 1e3,
                    crossRtt[crossRtt.length / 2] / 1e3,
                    crossRtt[crossRtt.length * 9 / 10] / 1e3));
            LOG.print(rttRows);
          }
        }
        for (SimNode n : same) {
          n.relay.close();
        }
        long before = cluster.heapUsedKiB();
        List<SimNode> held = nodes(idle, true, i -> URI.create(cluster.urls.get(i % relays)));
        long after = cluster.heapUsedKiB();
        long open = held.stream().filter(s -> s.relay.isOpen()).count();
        String row =
            String.format(
                Locale.ROOT,
                "| %d | %,d | %,d | %.1f KiB |%n",
                relays,
                open,
                open / relays,
                (after - before) / (double) open);
        LOG.print(row);
        idleRows.append(row);
        for (SimNode n : held) {
          n.relay.close();
        }
      }
    }
    return out.append(idleRows).append(rttRows).toString();
  }

  private String meshRow(
      int relays,
      String where,
      List<SimNode> senders,
      List<SimNode> receivers,
      int size,
      int seconds)
      throws InterruptedException {
    blast(senders, receivers, size, 3);
    long[] r = blast(senders, receivers, size, seconds);
    String row =
        String.format(
            Locale.ROOT,
            "| %d | %d, %s | %,.0f | %.1f | %,d |%n",
            relays,
            senders.size(),
            where,
            r[1] / (double) seconds,
            r[1] * (double) size / seconds / 1e6,
            r[2]);
    LOG.print(row);
    return row;
  }

  // ---- pps ------------------------------------------------------------------------------------

  private String pps(Process server) throws Exception {
    int size = Integer.getInteger("bench.size", 1400);
    int seconds = Integer.getInteger("bench.seconds", 10);
    StringBuilder rows = new StringBuilder();
    rows.append(
        "transport: "
            + TRANSPORT.name().toLowerCase(Locale.ROOT)
            + "\n\n| pairs | packet bytes | offered pkt/s | forwarded pkt/s | MB/s forwarded | dropped by senders' queues |\n|---|---|---|---|---|---|\n");
    String pairsList = System.getProperty("bench.pairs", "1,4,16");
    List<SimNode> all =
        nodes(
            2 * Arrays.stream(pairsList.split(",")).mapToInt(Integer::parseInt).max().orElse(1),
            true);
    for (String p : pairsList.split(",")) {
      int pairs = Integer.parseInt(p.strip());
      List<SimNode> senders = all.subList(0, pairs);
      List<SimNode> receivers = all.subList(pairs, 2 * pairs);
      // Warm-up, then the measurement.
      blast(senders, receivers, size, 3);
      long[] r = blast(senders, receivers, size, seconds);
      String row =
          String.format(
              Locale.ROOT,
              "| %d | %d | %,.0f | %,.0f | %.1f | %,d |",
              pairs,
              size,
              r[0] / (double) seconds,
              r[1] / (double) seconds,
              r[1] * (double) size / seconds / 1e6,
              r[2]);
      LOG.println(row);
      rows.append(row).append('\n');
    }
    return rows.toString();
  }

  // ---- fair -----------------------------------------------------------------------------------

  /**
   * Pair 1 floods; pair 2 is measured alone and next to the flood: its forwarded packets/s when
   * both send as fast as they can (a fair relay gives each about half), and its round trips (2 ms
   * apart) while pair 1 floods, against the same alone.
   */
  private String fair(Process server) throws Exception {
    int size = Integer.getInteger("bench.size", 1400);
    int seconds = Integer.getInteger("bench.seconds", 10);
    List<SimNode> n = nodes(4, true);
    SimNode floodFrom = n.get(0), floodTo = n.get(1), from = n.get(2), to = n.get(3);

    blast(List.of(from), List.of(to), size, 3);
    double alone = blast(List.of(from), List.of(to), size, seconds)[1] / (double) seconds;
    long[] rttAlone = roundTrips(from, to, size, 1000, 2);

    long floodBefore = floodTo.received.get();
    long[] both = blast(List.of(floodFrom, from), List.of(floodTo, to), size, seconds);
    double floodShare = (floodTo.received.get() - floodBefore) / (double) seconds;
    double secondShare = both[1] / (double) seconds - floodShare;

    AtomicBoolean flooding = new AtomicBoolean(true);
    Thread flood =
        Thread.ofPlatform()
            .start(() -> sendFlatOut(floodFrom, floodTo.nodeKey, size, flooding::get));
    long[] rttFlooded;
    try {
      rttFlooded = roundTrips(from, to, size, 1000, 2);
    } finally {
      flooding.set(false);
      flood.join();
    }
    String rows =
        String.format(
            Locale.ROOT,
            "transport: %s, %d-byte packets\n\n"
                + "| | pair 2 alone | pair 2 while pair 1 floods |\n|---|---|---|\n"
                + "| pair 2 forwarded, pkt/s (both flat out) | %,.0f | %,.0f (pair 1: %,.0f) |\n"
                + "| pair 2 round trip, median / p99 (2 ms apart) | %.0f / %.0f µs | %.0f / %.0f µs |\n",
            TRANSPORT.name().toLowerCase(Locale.ROOT),
            size,
            alone,
            secondShare,
            floodShare,
            rttAlone[rttAlone.length / 2] / 1e3,
            rttAlone[rttAlone.length * 99 / 100] / 1e3,
            rttFlooded[rttFlooded.length / 2] / 1e3,
            rttFlooded[rttFlooded.length * 99 / 100] / 1e3);
    LOG.print(rows);
    return rows;
  }

  /**
   * Sends {@code size}-byte packets from {@code from} to {@code to} as fast as its send queue takes
   * them while {@code go} holds; returns how many it took.
   */
  private static long sendFlatOut(SimNode from, byte[] to, int size, BooleanSupplier go) {
    byte[] packet = new byte[size];
    long n = 0;
    while (go.getAsBoolean()) {
      if (from.relay.send(to, packet, 0, size)) {
        n++;
      } else {
        // the queue is full: let the relay and the receivers have the CPU
        LockSupport.parkNanos(500_000);
      }
    }
    return n;
  }

  /** Returns {offered, received, dropped} over {@code seconds}. */
  private long[] blast(List<SimNode> senders, List<SimNode> receivers, int size, int seconds)
      throws InterruptedException {
    long receivedBefore = receivers.stream().mapToLong(n -> n.received.get()).sum();
    long droppedBefore = senders.stream().mapToLong(n -> n.relay.dropped()).sum();
    AtomicLong offered = new AtomicLong();
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    List<Thread> threads = new ArrayList<>();
    for (int i = 0; i < senders.size(); i++) {
      SimNode from = senders.get(i);
      byte[] to = receivers.get(i).nodeKey;
      threads.add(
          Thread.ofPlatform()
              .start(
                  () ->
                      offered.addAndGet(
                          sendFlatOut(from, to, size, () -> System.nanoTime() < end))));
    }
    for (Thread t : threads) {
      t.join();
    }
    Thread.sleep(500); // in-flight packets land
    long received = receivers.stream().mapToLong(n -> n.received.get()).sum() - receivedBefore;
    long dropped = senders.stream().mapToLong(n -> n.relay.dropped()).sum() - droppedBefore;
    return new long[] {offered.get(), received, dropped};
  }

  // ---- idle -----------------------------------------------------------------------------------

  private String idle(Process server) throws Exception {
    int n = Integer.getInteger("bench.idle", 2000);
    long base = ControlPlaneBenchmark.heapUsedKiB(server.pid());
    List<SimNode> registered = nodes(n, false);
    long registeredHeap = ControlPlaneBenchmark.heapUsedKiB(server.pid());
    long start = System.nanoTime();
    Semaphore inFlight = new Semaphore(64);
    List<CompletableFuture<SimNode>> all = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      inFlight.acquire();
      all.add(
          registered
              .get(i)
              .connectRelay(i)
              .orTimeout(WAIT.toSeconds(), TimeUnit.SECONDS)
              .whenComplete((x, e) -> inFlight.release()));
    }
    for (CompletableFuture<SimNode> f : all) {
      f.get();
    }
    double connectSeconds = (System.nanoTime() - start) / 1e9;
    long connected = registered.stream().filter(s -> s.relay.isOpen()).count();
    long heap = ControlPlaneBenchmark.heapUsedKiB(server.pid());
    long rss = ControlPlaneBenchmark.rssKiB(server.pid());
    String row =
        String.format(
            Locale.ROOT,
            "idle relay connections: %,d held (connected in %.1f s); server used heap %,d KiB with no nodes, %,d KiB with %,d nodes registered,"
                + " %,d KiB with them on the relay (%.1f KiB per relay connection); RSS %,d KiB",
            connected,
            connectSeconds,
            base,
            registeredHeap,
            n,
            heap,
            (heap - registeredHeap) / (double) connected,
            rss);
    LOG.println(row);
    for (SimNode s : registered) {
      s.relay.close();
    }
    return row;
  }
}
