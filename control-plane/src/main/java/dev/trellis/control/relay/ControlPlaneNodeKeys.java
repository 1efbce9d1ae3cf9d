package dev.trellis.control.relay;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.relay.RelayFrame;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node-key check of a relay running on its own ({@code trellis relay}): asks the coordination
 * server's admin API ({@code POST /api/v1/relay/live-node-keys}, with an API key) when a node
 * connects, and re-checks every connected key every {@link #RECHECK}, closing those that are no
 * longer live. While the server cannot be reached, new connections are refused and existing ones
 * kept (their packets stay WireGuard ciphertext the relay cannot read).
 */
public final class ControlPlaneNodeKeys implements NodeKeyAuthority, AutoCloseable {
  public static final Duration RECHECK = Duration.ofSeconds(10);
  private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(5);
  private static final int CHUNK = 1000;
  private static final Logger LOG = LoggerFactory.getLogger(ControlPlaneNodeKeys.class);

  private final HttpClient http;
  private final URI endpoint;
  private final String apiKey;
  private final ScheduledExecutorService timer =
      Executors.newSingleThreadScheduledExecutor(
          r -> {
            Thread t = new Thread(r, "relay-key-recheck");
            t.setDaemon(true);
            return t;
          });

  public ControlPlaneNodeKeys(HttpClient http, URI loginServer, String apiKey) {
    this.http = http;
    String base = loginServer.toString();
    this.endpoint =
        URI.create((base.endsWith("/") ? base : base + "/") + "api/v1/relay/live-node-keys");
    this.apiKey = apiKey;
  }

  /** The live subset of {@code keys}; fails when the server cannot answer. */
  public CompletableFuture<Set<String>> live(List<String> keys) {
    byte[] body;
    try {
      body = ControlJson.MAPPER.writeValueAsBytes(Map.of("keys", keys));
    } catch (IOException e) {
      return CompletableFuture.failedFuture(e);
    }
    HttpRequest request =
        HttpRequest.newBuilder(endpoint)
            .header("Authorization", "Bearer " + apiKey)
            .header("Content-Type", "application/json")
            .timeout(REQUEST_TIMEOUT)
            .POST(HttpRequest.BodyPublishers.ofByteArray(body))
            .build();
    return http.sendAsync(request, HttpResponse.BodyHandlers.ofString())
        .thenApply(
            response -> {
              if (response.statusCode() != 200) {
                throw new IllegalStateException(
                    "coordination server answered "
                        + response.statusCode()
                        + ": "
                        + response.body());
              }
              try {
                Set<String> live = new HashSet<>();
                for (JsonNode k : ControlJson.MAPPER.readTree(response.body()).path("live")) {
                  live.add(k.asText());
                }
                return live;
              } catch (IOException e) {
                throw new IllegalStateException(
                    "unreadable answer from the coordination server: " + e.getMessage());
              }
            });
  }

  @Override
  public CompletionStage<Boolean> isLive(String nodeKey) {
    return live(List.of(nodeKey)).thenApply(live -> live.contains(nodeKey));
  }

  @Override
  public void watch(RelayRegistry registry) {
    timer.scheduleWithFixedDelay(
        () -> recheck(registry), RECHECK.toMillis(), RECHECK.toMillis(), TimeUnit.MILLISECONDS);
  }

  private void recheck(RelayRegistry registry) {
    List<String> connected = registry.connectedKeys();
    for (int from = 0; from < connected.size(); from += CHUNK) {
      List<String> chunk = connected.subList(from, Math.min(connected.size(), from + CHUNK));
      try {
        Set<String> live = live(chunk).get(REQUEST_TIMEOUT.toSeconds() + 1, TimeUnit.SECONDS);
        for (String k : chunk) {
          if (!live.contains(k)) {
            registry.evict(k, "node key no longer live (expired, logged out or deleted)");
          }
        }
      } catch (Exception e) {
        String problem =
            "cannot reach the coordination server to check node keys; new connections are refused";
        if (!problem.equals(healthProblem)) {
          healthProblem = problem;
          registry.broadcast(new RelayFrame.Health(problem));
        }
        LOG.warn(
            "cannot re-check node keys with "
                + endpoint
                + ": "
                + e.getMessage()
                + "; keeping the connections");
        return;
      }
    }
    if (healthProblem != null) {
      healthProblem = null;
      registry.broadcast(new RelayFrame.Health(""));
    }
  }

  /** The problem last announced in a Health frame; null while healthy (re-check thread only). */
  private String healthProblem;

  @Override
  public void close() {
    timer.shutdownNow();
  }
}
