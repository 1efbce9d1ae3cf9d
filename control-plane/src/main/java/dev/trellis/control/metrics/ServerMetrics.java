package dev.trellis.control.metrics;

import dev.trellis.control.cluster.ClusterStatus;
import dev.trellis.control.relay.RelayMesh;
import dev.trellis.control.relay.RelayRegistry;
import dev.trellis.control.stun.StunServer;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.instrumentation.jvm.JvmMetrics;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.Unit;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.typed.Cluster;

/**
 * One server's metrics, as Prometheus scrapes them from {@code trellis.metrics.listen}. Names and
 * labels are listed in docs/METRICS.md; no label is per packet or per node, so the series stay
 * bounded on a campus of any size (the mesh's per-relay label has one value per relay).
 *
 * <p>Two kinds of value. What the packet paths already count for the admin API (the relay's and
 * STUN's adders, the mesh's links) is read at scrape time through callbacks, so metrics add no work
 * per packet. What only the control plane knows (sessions, logins, map deltas, the time from a
 * change to its delta) it records here as it happens.
 *
 * <p>Threads: the counters and histograms are the library's thread-safe ones, recorded from the
 * actors and streams that see the events; the callbacks run on the scraping thread and read only
 * thread-safe sources (adders, concurrent maps, the cluster's state snapshot, the atomics below).
 */
public final class ServerMetrics {
  private final PrometheusRegistry registry = new PrometheusRegistry();

  private final Gauge controlSessions =
      Gauge.builder()
          .name("trellis_control_sessions")
          .help("Control sessions open on this server (nodes connected, logged in or not).")
          .register(registry);

  private final Counter logins =
      Counter.builder()
          .name("trellis_control_logins_total")
          .help(
              "Node logins by result: registered (a new node), reauthenticated (a known node),"
                  + " refused.")
          .labelNames("result")
          .register(registry);

  private final Counter mapDeltas =
      Counter.builder()
          .name("trellis_map_deltas_sent_total")
          .help("Map deltas handed to control sessions (one per session per batch).")
          .register(registry);

  private final Counter fullMaps =
      Counter.builder()
          .name("trellis_map_full_maps_sent_total")
          .help("Full maps handed to control sessions (at login and on resync).")
          .register(registry);

  private final Histogram changeToDelivery =
      Histogram.builder()
          .name("trellis_map_change_delivery_seconds")
          .unit(Unit.SECONDS)
          .help(
              "From a node change reaching this replica's map to its delta being handed to every"
                  + " session, per batch.")
          .classicOnly()
          .classicUpperBounds(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
          .register(registry);

  private final AtomicLong nodesKnown = new AtomicLong();
  private final AtomicLong nodesOnline = new AtomicLong();

  /** A registry with the control metrics and, if {@code jvm}, the JVM's (memory, GC, threads). */
  public ServerMetrics(boolean jvm) {
    for (String result : new String[] {"registered", "reauthenticated", "refused"}) {
      logins.labelValues(result); // present at 0 before the first login
    }
    if (jvm) {
      JvmMetrics.builder().register(registry);
    }
    GaugeWithCallback.builder()
        .name("trellis_nodes")
        .help("Nodes this replica's map knows, by state (online: with a live control session).")
        .labelNames("state")
        .callback(
            cb -> {
              long online = nodesOnline.get();
              cb.call(online, "online");
              cb.call(Math.max(0, nodesKnown.get() - online), "offline");
            })
        .register(registry);
  }

  public PrometheusRegistry registry() {
    return registry;
  }

  // ---- the control plane records ------------------------------------------------------------

  public void sessionOpened() {
    controlSessions.inc();
  }

  public void sessionClosed() {
    controlSessions.dec();
  }

  /** A login's outcome: "registered", "reauthenticated" or "refused". */
  public void login(String result) {
    logins.labelValues(result).inc();
  }

  /** One batch's delta went to {@code sessions} sessions, {@code nanos} after its first change. */
  public void deltasSent(int sessions, long nanos) {
    mapDeltas.inc(sessions);
    changeToDelivery.observe(nanos / 1e9);
  }

  public void fullMapSent() {
    fullMaps.inc();
  }

  /** The map's node counts, set by the map whenever they change. */
  public void nodes(long known, long online) {
    nodesKnown.set(known);
    nodesOnline.set(online);
  }

  // ---- read at scrape time -------------------------------------------------------------------

  /** The relay of this member (relay role): connections, frames, bytes, drops, queues, mesh. */
  public void watchRelay(RelayRegistry relay, Supplier<RelayMesh> mesh) {
    GaugeWithCallback.builder()
        .name("trellis_relay_connections")
        .help("Nodes connected to this relay and ready (other relays' mesh links not counted).")
        .callback(cb -> cb.call(relay.stats().connected()))
        .register(registry);
    GaugeWithCallback.builder()
        .name("trellis_relay_queued_frames")
        .help("Frames waiting in this relay's per-node send queues, summed over nodes.")
        .callback(cb -> cb.call(relay.queuedFrames()))
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_relay_authentications_total")
        .help("Relay connections by the outcome of their key proof: accepted, refused.")
        .labelNames("result")
        .callback(
            cb -> {
              RelayRegistry.Stats s = relay.stats();
              cb.call(s.accepted(), "accepted");
              cb.call(s.refused(), "refused");
            })
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_relay_received_frames_total")
        .help("Frames received from relay connections.")
        .callback(cb -> cb.call(relay.stats().framesIn()))
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_relay_received_bytes_total")
        .help("Bytes of frames received from relay connections.")
        .callback(cb -> cb.call(relay.stats().bytesIn()))
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_relay_forwarded_packets_total")
        .help("Packets this relay delivered to a node connected to it.")
        .callback(cb -> cb.call(relay.stats().packetsForwarded()))
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_relay_forwarded_bytes_total")
        .help("Bytes of packets this relay delivered to a node connected to it.")
        .callback(cb -> cb.call(relay.stats().bytesForwarded()))
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_relay_dropped_packets_total")
        .help(
            "Packets the relay dropped, by reason: queue_full (the destination is slow),"
                + " unknown_destination (not connected here or to any relay of the mesh),"
                + " malformed (a frame that is not the protocol's).")
        .labelNames("reason")
        .callback(
            cb -> {
              RelayRegistry.Stats s = relay.stats();
              cb.call(s.dropped(), "queue_full");
              cb.call(s.unknownDestination(), "unknown_destination");
              cb.call(s.malformed(), "malformed");
            })
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_relay_mesh_forwarded_packets_total")
        .help("Packets sent on to the relay holding their destination, by that relay's URL.")
        .labelNames("peer")
        .callback(
            cb -> {
              RelayMesh m = mesh.get();
              if (m != null) {
                m.forwardedByPeer().forEach((peer, n) -> cb.call(n, peer));
              }
            })
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_relay_mesh_dropped_packets_total")
        .help("Packets for another relay's node dropped because the link to it was down or full.")
        .callback(
            cb -> {
              RelayMesh m = mesh.get();
              cb.call(m == null ? 0 : m.forwardDroppedCount());
            })
        .register(registry);
    CounterWithCallback.builder()
        .name("trellis_relay_mesh_received_packets_total")
        .help("Packets other relays sent here for this relay's nodes.")
        .callback(
            cb -> {
              RelayMesh m = mesh.get();
              cb.call(m == null ? 0 : m.receivedCount());
            })
        .register(registry);
  }

  /** The STUN server: requests by what they were answered with. */
  public void watchStun(Supplier<StunServer.Counters> stun) {
    CounterWithCallback.builder()
        .name("trellis_stun_requests_total")
        .help(
            "STUN datagrams received, by outcome: success (a Binding response), error (an error"
                + " response), dropped (not answered).")
        .labelNames("result")
        .callback(
            cb -> {
              StunServer.Counters c = stun.get();
              cb.call(c.bindingResponses() + c.classicBindingResponses(), "success");
              cb.call(c.errorResponses(), "error");
              cb.call(c.dropped(), "dropped");
            })
        .register(registry);
  }

  /** The Pekko cluster as this member sees it: members by role and status, unreachable ones. */
  public void watchCluster(ActorSystem<?> system) {
    GaugeWithCallback.builder()
        .name("trellis_cluster_members")
        .help("Cluster members by Trellis role (control, relay) and membership status.")
        .labelNames("role", "status")
        .callback(
            cb -> {
              Map<String, Integer> counts = new TreeMap<>();
              for (String role : new String[] {"control", "relay"}) {
                for (String status :
                    new String[] {"joining", "weaklyup", "up", "leaving", "exiting", "down"}) {
                  counts.put(role + " " + status, 0);
                }
              }
              for (Member m : Cluster.get(system).state().getMembers()) {
                String status = m.status().toString().toLowerCase(java.util.Locale.ROOT);
                for (String role : ClusterStatus.trellisRoles(m)) {
                  counts.merge(role + " " + status, 1, Integer::sum);
                }
              }
              counts.forEach(
                  (key, n) -> {
                    int space = key.indexOf(' ');
                    cb.call(n, key.substring(0, space), key.substring(space + 1));
                  });
            })
        .register(registry);
    GaugeWithCallback.builder()
        .name("trellis_cluster_unreachable_members")
        .help("Members this member's failure detector marks unreachable.")
        .callback(cb -> cb.call(Cluster.get(system).state().getUnreachable().size()))
        .register(registry);
  }
}
