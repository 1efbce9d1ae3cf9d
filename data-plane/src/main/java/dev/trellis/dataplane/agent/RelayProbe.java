package dev.trellis.dataplane.agent;

import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage.RelayInfo;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Measures the relays of a relay map (compare tailscale's {@code net/netcheck}): the best of three
 * TCP connects to each relay's host and port (what a campus that only passes TCP lets through) and,
 * where a region has several relays, how many nodes each holds. Blocking: run it on a thread that
 * may wait (the callers use virtual threads). Keeps no state.
 */
final class RelayProbe {
  private RelayProbe() {}

  /**
   * One relay as measured: {@code millis} null (and {@code error} set) when it could not be
   * reached.
   */
  record RelayResult(RelayInfo relay, Double millis, String error, Integer load) {}

  /** What one probe found; the input of {@link HomeRelayPolicy}. */
  record Report(List<RelayResult> results) {
    static final Report EMPTY = new Report(List.of());

    /** A region's latency is that of its nearest relay; unreachable regions are absent. */
    Map<String, Double> regionLatency() {
      Map<String, Double> out = new LinkedHashMap<>();
      for (RelayResult r : results) {
        if (r.millis() != null) {
          out.merge(r.relay().region(), r.millis(), Math::min);
        }
      }
      return out;
    }

    Set<String> reachableUrls() {
      Set<String> out = new HashSet<>();
      results.stream().filter(r -> r.millis() != null).forEach(r -> out.add(r.relay().url()));
      return out;
    }

    /** Relay URL → nodes it held, where it said. */
    Map<String, Integer> loads() {
      Map<String, Integer> out = new HashMap<>();
      results.stream()
          .filter(r -> r.load() != null)
          .forEach(r -> out.put(r.relay().url(), r.load()));
      return out;
    }
  }

  /**
   * Measures every relay; asks for loads only where a region has more than one and {@code
   * withLoads}.
   */
  static Report run(List<RelayInfo> relays, boolean withLoads, HttpClient http) {
    List<RelayResult> out = new ArrayList<>();
    for (RelayInfo r : relays) {
      try {
        double millis = connectNanos(r) / 1e6;
        boolean shared = relays.stream().filter(o -> o.region().equals(r.region())).count() > 1;
        out.add(new RelayResult(r, millis, null, withLoads && shared ? load(r, http) : null));
      } catch (IOException | IllegalArgumentException e) {
        out.add(new RelayResult(r, null, e.getMessage(), null));
      }
    }
    return new Report(List.copyOf(out));
  }

  /** The best of three TCP connects to the relay's host and port, in nanoseconds. */
  static long connectNanos(RelayInfo relay) throws IOException {
    URI u = URI.create(relay.url());
    if (u.getHost() == null) {
      throw new IllegalArgumentException("relay URL without a host: " + relay.url());
    }
    int port = u.getPort() != -1 ? u.getPort() : "https".equals(u.getScheme()) ? 443 : 80;
    long best = Long.MAX_VALUE;
    IOException last = null;
    for (int i = 0; i < AgentTiming.RELAY_PROBE_ATTEMPTS; i++) {
      try (Socket s = new Socket()) {
        long t = System.nanoTime();
        s.connect(
            new InetSocketAddress(u.getHost(), port),
            (int) AgentTiming.RELAY_PROBE_CONNECT_TIMEOUT.toMillis());
        best = Math.min(best, System.nanoTime() - t);
      } catch (IOException e) {
        last = e;
      }
    }
    if (best == Long.MAX_VALUE) {
      throw last != null ? last : new IOException("no connection");
    }
    return best;
  }

  /** {@code GET <relay>/relay/load}: how many nodes the relay holds; null when it cannot say. */
  static Integer load(RelayInfo relay, HttpClient http) {
    try {
      HttpResponse<String> response =
          http.send(
              HttpRequest.newBuilder(URI.create(relay.url().replaceAll("/+$", "") + "/relay/load"))
                  .timeout(AgentTiming.RELAY_LOAD_TIMEOUT)
                  .GET()
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      if (response.statusCode() != 200) {
        return null;
      }
      var json = ControlJson.MAPPER.readTree(response.body());
      return json.has("connectedNodes") ? json.get("connectedNodes").asInt() : null;
    } catch (IOException | IllegalArgumentException e) {
      return null;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
  }
}
