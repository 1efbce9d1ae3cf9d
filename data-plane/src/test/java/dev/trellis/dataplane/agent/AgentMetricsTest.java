package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.dataplane.metrics.MetricsEndpoint;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * The node's metrics from a status and counters: what `trellis metrics` prints and {@code
 * --metrics-listen} serves. promtool checks the real agent's output in CampusPolicyTest.
 */
class AgentMetricsTest {
  private final AtomicInteger statusCalls = new AtomicInteger();
  private final AgentMetrics metrics =
      new AgentMetrics(
          () -> {
            statusCalls.incrementAndGet();
            return new LocalApiTest.StubAgent().status();
          },
          () -> Map.of("policy", 7L, "replayed", 2L),
          () -> Map.of("building-b", 3L));

  @Test
  void peersDropsAndReconnectsAreExposedUnderTheirNames() {
    String text = metrics.text();
    assertTrue(text.contains("trellis_peer_received_bytes_total{peer=\"arm\"} 10.0"), text);
    assertTrue(text.contains("trellis_peer_sent_bytes_total{peer=\"arm\"} 20.0"), text);
    assertTrue(
        text.contains("trellis_peer_path_info{path=\"direct\",peer=\"arm\",relay=\"\"} 1.0"), text);
    assertTrue(text.contains("trellis_peer_rtt_seconds{peer=\"arm\"} 7.5E-4"), text);
    assertTrue(text.contains("trellis_peer_jitter_seconds{peer=\"arm\"} 1.25E-4"), text);
    assertTrue(text.contains("trellis_peer_loss_ratio{peer=\"arm\"} 0.0"), text);
    assertTrue(text.contains("trellis_node_dropped_packets_total{reason=\"policy\"} 7.0"), text);
    assertTrue(text.contains("trellis_node_dropped_packets_total{reason=\"replayed\"} 2.0"), text);
    assertTrue(
        text.contains("trellis_node_relay_reconnects_total{region=\"building-b\"} 3.0"), text);
    assertTrue(text.contains("trellis_node_control_connected 1.0"), text);
    assertTrue(text.contains("trellis_node_peers{state=\"online\"} 1.0"), text);
    // No handshake yet: the series is absent rather than a made-up age.
    assertTrue(!text.contains("trellis_peer_handshake_age_seconds{"), text);
    // One scrape asks the agent for its status once, not once per metric.
    assertEquals(1, statusCalls.get());
  }

  @Test
  void theListenerServesTheSameOverHttp() throws Exception {
    try (MetricsEndpoint endpoint =
        MetricsEndpoint.start(metrics.registry(), "127.0.0.1:0", "--metrics-listen")) {
      HttpResponse<String> r =
          HttpClient.newHttpClient()
              .send(
                  HttpRequest.newBuilder(
                          URI.create("http://127.0.0.1:" + endpoint.port() + "/metrics"))
                      .build(),
                  HttpResponse.BodyHandlers.ofString());
      assertEquals(200, r.statusCode());
      assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"));
      assertTrue(r.body().contains("trellis_node_dropped_packets_total{reason=\"policy\"} 7.0"));

      // A second listener on the same port is refused with the address and the option named.
      IOException busy =
          assertThrows(
              IOException.class,
              () ->
                  MetricsEndpoint.start(
                      metrics.registry(), "127.0.0.1:" + endpoint.port(), "--metrics-listen"));
      assertTrue(busy.getMessage().contains("127.0.0.1:" + endpoint.port()), busy.getMessage());
      assertTrue(busy.getMessage().contains("--metrics-listen"), busy.getMessage());
    }
  }

  @Test
  void badAddressesAreRefusedWithTheSettingNamed() {
    for (String bad : new String[] {"9090", ":9090", "host:", "host:70000", "host:x"}) {
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class,
              () -> MetricsEndpoint.parse(bad, "trellis.metrics.listen"),
              bad);
      assertTrue(e.getMessage().startsWith("trellis.metrics.listen must be HOST:PORT"), bad);
    }
    assertEquals(9090, MetricsEndpoint.parse("[::1]:9090", "x").getPort());
  }
}
