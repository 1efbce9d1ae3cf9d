package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.metrics.MetricsEndpoint;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The node's metrics, as `trellis metrics` prints them and {@code trellis agent --metrics-listen}
 * serves them (docs/METRICS.md): per peer (labelled by hostname, so one series per peer the map
 * gives this node) bytes each way, handshake age, path and round trip; drops by reason; relay
 * reconnects per region. Everything is read at scrape time from what the agent already keeps, so
 * metrics cost nothing between scrapes.
 *
 * <p>Threads: the callbacks run on the caller's thread ({@link #text()}) or the metrics listener's;
 * they read the agent's status (built on the agent's own thread, waited for) and thread-safe
 * counters. One status is shared by the callbacks of one scrape.
 */
public final class AgentMetrics {
  /** A scrape's callbacks share one status fetched at most this long ago. */
  private static final Duration STATUS_REUSE = Duration.ofMillis(200);

  private final PrometheusRegistry registry = new PrometheusRegistry();
  private final Supplier<AgentStatus> status;
  private volatile Fetched last;

  private record Fetched(AgentStatus status, long atNanos) {}

  /**
   * {@code drops}: the device's drop counters by reason; {@code relayReconnects}: connections made
   * again to each relay region after the first.
   */
  public AgentMetrics(
      Supplier<AgentStatus> status,
      Supplier<Map<String, Long>> drops,
      Supplier<Map<String, Long>> relayReconnects) {
    this.status = status;
    GaugeWithCallback.builder()
        .name("trellis_node_control_connected")
        .help("1 when the node is logged in and connected to a control server, else 0.")
        .callback(cb -> cb.call(current().connected() ? 1 : 0))
        .register(registry);
    GaugeWithCallback.builder()
        .name("trellis_node_peers")
        .help("Peers in this node's map, by whether the control server reports them online.")
        .labelNames("state")
        .callback(
            cb -> {
              long online = current().peers().stream().filter(AgentStatus.Peer::online).count();
              cb.call(online, "online");
              cb.call(current().peers().size() - online, "offline");
            })
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_peer_received_bytes_total")
        .help("Bytes received from a peer through the tunnel (WireGuard's rx_bytes).")
        .labelNames("peer")
        .callback(cb -> current().peers().forEach(p -> cb.call(p.rxBytes(), p.hostname())))
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_peer_sent_bytes_total")
        .help("Bytes sent to a peer through the tunnel (WireGuard's tx_bytes).")
        .labelNames("peer")
        .callback(cb -> current().peers().forEach(p -> cb.call(p.txBytes(), p.hostname())))
        .register(registry);
    GaugeWithCallback.builder()
        .name("trellis_peer_handshake_age_seconds")
        .help("Seconds since the last completed WireGuard handshake with a peer (none: absent).")
        .labelNames("peer")
        .callback(
            cb -> {
              Instant now = Instant.now();
              for (AgentStatus.Peer p : current().peers()) {
                if (p.lastHandshake() != null) {
                  cb.call(
                      Duration.between(p.lastHandshake(), now).toMillis() / 1000.0, p.hostname());
                }
              }
            })
        .register(registry);
    GaugeWithCallback.builder()
        .name("trellis_peer_path_info")
        .help(
            "1 for the path a peer's packets take now: path direct or relay, relay the region"
                + " (empty when direct).")
        .labelNames("peer", "path", "relay")
        .callback(
            cb ->
                current()
                    .peers()
                    .forEach(
                        p ->
                            cb.call(1, p.hostname(), p.path(), p.relay() == null ? "" : p.relay())))
        .register(registry);
    GaugeWithCallback.builder()
        .name("trellis_peer_rtt_seconds")
        .help(
            "Mean round trip of the last 30 path-discovery pings on a peer's current path (none"
                + " answered yet: absent).")
        .labelNames("peer")
        .callback(
            cb -> {
              for (AgentStatus.Peer p : current().peers()) {
                if (p.rttMs() != null) {
                  cb.call(p.rttMs() / 1000.0, p.hostname());
                }
              }
            })
        .register(registry);
    GaugeWithCallback.builder()
        .name("trellis_peer_jitter_seconds")
        .help(
            "Mean difference between consecutive round trips of those pings (none answered yet:"
                + " absent).")
        .labelNames("peer")
        .callback(
            cb -> {
              for (AgentStatus.Peer p : current().peers()) {
                if (p.jitterMs() != null) {
                  cb.call(p.jitterMs() / 1000.0, p.hostname());
                }
              }
            })
        .register(registry);
    GaugeWithCallback.builder()
        .name("trellis_peer_loss_ratio")
        .help("Share of those pings lost, 0 to 1 (none sent yet: absent).")
        .labelNames("peer")
        .callback(
            cb -> {
              for (AgentStatus.Peer p : current().peers()) {
                if (p.loss() != null) {
                  cb.call(p.loss(), p.hostname());
                }
              }
            })
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_node_dropped_packets_total")
        .help(
            "Packets the node's WireGuard device dropped, by reason (policy: refused by the access"
                + " policy's packet filter; replayed; malformed; decrypt_failed; ...).")
        .labelNames("reason")
        .callback(cb -> drops.get().forEach((reason, n) -> cb.call(n, reason)))
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_node_relay_reconnects_total")
        .help("Connections made again to a relay region after the first (the link had dropped).")
        .labelNames("region")
        .callback(cb -> relayReconnects.get().forEach((region, n) -> cb.call(n, region)))
        .register(registry);
  }

  public PrometheusRegistry registry() {
    return registry;
  }

  /** The metrics in Prometheus' text format, as a scrape returns them. */
  public String text() {
    return MetricsEndpoint.text(registry);
  }

  private AgentStatus current() {
    Fetched f = last;
    long now = System.nanoTime();
    if (f == null || now - f.atNanos() > STATUS_REUSE.toNanos()) {
      f = new Fetched(status.get(), now);
      last = f;
    }
    return f.status();
  }
}
