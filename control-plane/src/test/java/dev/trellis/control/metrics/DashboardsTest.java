package dev.trellis.control.metrics;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import dev.trellis.control.relay.RelayRegistry;
import dev.trellis.control.stun.StunServer;
import dev.trellis.dataplane.agent.AgentMetrics;
import dev.trellis.dataplane.agent.AgentStatus;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot;
import io.prometheus.metrics.model.snapshots.InfoSnapshot;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.Test;

/**
 * Every metric the Grafana dashboards in cluster-config/grafana query is one the server or the node
 * declares (a family with no series yet, like a mesh with no other relay, still counts), so a
 * renamed metric cannot leave a panel silently empty. The values are checked against real traffic
 * in RelayServerTest and CampusPolicyTest.
 */
class DashboardsTest {
  private static final Path GRAFANA = Path.of("..", "cluster-config", "grafana");

  /** Series names Trellis, the JVM and the process export (PromQL functions never match). */
  private static final Pattern METRIC =
      Pattern.compile("\\b((?:trellis|jvm|process)_[a-z0-9_]+)\\b");

  /** The sample names a registry's families are exposed under (counters as _total, ...). */
  private static Set<String> declared(PrometheusRegistry registry) {
    Set<String> names = new TreeSet<>();
    for (MetricSnapshot s : registry.scrape()) {
      String name = s.getMetadata().getPrometheusName();
      switch (s) {
        case CounterSnapshot c -> names.add(name + "_total");
        case HistogramSnapshot h ->
            names.addAll(List.of(name + "_bucket", name + "_sum", name + "_count"));
        case InfoSnapshot i -> names.add(name + "_info");
        default -> names.add(name);
      }
      if (s instanceof io.prometheus.metrics.model.snapshots.SummarySnapshot) {
        names.addAll(List.of(name + "_sum", name + "_count"));
      }
    }
    return names;
  }

  @Test
  void everyQueriedMetricIsDeclared() throws Exception {
    ActorTestKit kit =
        ActorTestKit.create(
            "dashboards",
            ConfigFactory.parseString(
                    "pekko.actor.provider = cluster\npekko.remote.artery.canonical.port = 0")
                .withFallback(ConfigFactory.load()));
    Set<String> exported = new TreeSet<>();
    try {
      ServerMetrics server = new ServerMetrics(true);
      server.watchRelay(new RelayRegistry("default"), () -> null);
      server.watchStun(() -> new StunServer.Counters(0, 0, 0, 0, 0));
      server.watchCluster(kit.system());
      exported.addAll(declared(server.registry()));
    } finally {
      kit.shutdownTestKit();
    }
    AgentStatus idle =
        new AgentStatus(
            AgentStatus.RUNNING,
            "http://s",
            true,
            null,
            "trellis0",
            41641,
            null,
            List.of(),
            null,
            AgentStatus.Names.OFF,
            AgentStatus.Multicast.OFF);
    exported.addAll(declared(new AgentMetrics(() -> idle, Map::of, Map::of).registry()));

    ObjectMapper json = new ObjectMapper();
    List<Path> dashboards;
    try (Stream<Path> files = Files.list(GRAFANA)) {
      dashboards = files.filter(p -> p.toString().endsWith(".json")).sorted().toList();
    }
    assertFalse(dashboards.isEmpty(), "no dashboards in " + GRAFANA.toAbsolutePath());
    for (Path file : dashboards) {
      JsonNode dashboard = json.readTree(file.toFile());
      Set<String> queried = new TreeSet<>();
      for (JsonNode panel : dashboard.path("panels")) {
        assertFalse(panel.path("targets").isEmpty(), file + ": panel without a query");
        for (JsonNode target : panel.path("targets")) {
          Matcher m = METRIC.matcher(target.path("expr").asText());
          while (m.find()) {
            queried.add(m.group(1));
          }
        }
      }
      assertFalse(queried.isEmpty(), file + " queries no Trellis metric");
      Set<String> missing = new TreeSet<>(queried);
      missing.removeAll(exported);
      assertTrue(
          missing.isEmpty(), file.getFileName() + " queries what nobody declares: " + missing);
    }
  }
}
