package dev.trellis.control.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.persistence.postgres.LocalPostgres;
import dev.trellis.proto.control.ControlJson;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * {@code members} real {@code trellis server} processes on loopback forming one cluster (control +
 * relay each) over one PostgreSQL journal that this starts too: what the cluster benchmarks run
 * against. A one-member "cluster" uses the same PostgreSQL journal, so 1 vs 3 compares replicas,
 * not journals.
 */
final class BenchCluster implements AutoCloseable {
  final List<Process> servers = new ArrayList<>();
  final List<String> urls = new ArrayList<>();
  final List<Path> dataDirs = new ArrayList<>();
  final ControlPlaneBenchmark.Admin admin;
  private final LocalPostgres postgres;

  private BenchCluster(Path home, String serverOpts, int members, LocalPostgres postgres)
      throws Exception {
    this.postgres = postgres;
    String jdbc = postgres.createDatabase("bench_" + System.nanoTime() % 1_000_000_000L);
    int[] httpPorts = new int[members];
    int[] clusterPorts = new int[members];
    StringBuilder seeds = new StringBuilder();
    for (int i = 0; i < members; i++) {
      httpPorts[i] = freePort();
      clusterPorts[i] = freePort();
      seeds.append(i == 0 ? "" : ", ").append("\"127.0.0.1:").append(clusterPorts[i]).append('"');
    }
    for (int i = 0; i < members; i++) {
      Path dataDir = Files.createTempDirectory("trellis-cluster-bench-");
      Path conf = dataDir.resolve("trellis.conf");
      Files.writeString(
          conf,
          """
                    trellis.journal = postgres
                    trellis.postgres { url = "%s", user = "%s" }
                    trellis.cluster { host = "127.0.0.1", port = %d, seed-nodes = [%s] }
                    trellis.stun.enabled = false
                    """
              .formatted(jdbc, LocalPostgres.USER, clusterPorts[i], seeds));
      dataDirs.add(dataDir);
      servers.add(ControlPlaneBenchmark.startServer(home, serverOpts, dataDir, httpPorts[i], conf));
      urls.add("http://127.0.0.1:" + httpPorts[i]);
    }
    ControlPlaneBenchmark.Admin first = null;
    for (int i = 0; i < members; i++) {
      ControlPlaneBenchmark.Admin a =
          ControlPlaneBenchmark.awaitServer(servers.get(i), dataDirs.get(i), urls.get(i));
      if (first == null) {
        first = a;
      }
    }
    admin = first;
    awaitUp(members);
  }

  static BenchCluster start(Path home, String serverOpts, int members) throws Exception {
    LocalPostgres pg = LocalPostgres.start();
    try {
      return new BenchCluster(home, serverOpts, members, pg);
    } catch (Exception | Error e) {
      pg.close();
      throw e;
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  /** Waits until the first member sees {@code n} Up members and every member's relay is listed. */
  private void awaitUp(int n) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    while (System.nanoTime() < deadline) {
      JsonNode status = get("cluster");
      JsonNode relays = get("relays");
      int up = 0;
      for (JsonNode m : status.path("members")) {
        up += "Up".equals(m.path("status").asText()) ? 1 : 0;
      }
      if (up == n && relays.path("relays").size() == n) {
        return;
      }
      Thread.sleep(200);
    }
    throw new IOException(
        "the cluster did not reach " + n + " Up members with their relays in 120 s");
  }

  JsonNode get(String path) throws Exception {
    HttpResponse<String> r =
        admin
            .http()
            .send(
                HttpRequest.newBuilder(URI.create(admin.url() + "/api/v1/" + path))
                    .header("Authorization", "Bearer " + admin.apiKey())
                    .GET()
                    .build(),
                HttpResponse.BodyHandlers.ofString());
    if (r.statusCode() / 100 != 2) {
      return ControlJson.MAPPER.createObjectNode();
    }
    return ControlJson.MAPPER.readTree(r.body());
  }

  /** The sum over the members of their used heap after a full GC. */
  long heapUsedKiB() throws Exception {
    long sum = 0;
    for (Process p : servers) {
      sum += ControlPlaneBenchmark.heapUsedKiB(p.pid());
    }
    return sum;
  }

  @Override
  public void close() {
    for (Process p : servers) {
      p.destroy();
    }
    for (Process p : servers) {
      try {
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
          p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    postgres.close();
    for (Path d : dataDirs) {
      try {
        ControlPlaneBenchmark.deleteTree(d);
      } catch (Exception e) {
        System.err.println("could not remove " + d + ": " + e);
      }
    }
  }
}
