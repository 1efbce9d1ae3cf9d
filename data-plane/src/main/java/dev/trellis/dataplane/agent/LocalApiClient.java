package dev.trellis.dataplane.agent;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.proto.control.ControlJson;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Talks to a running agent's {@link LocalApi}: one request, one reply. */
public final class LocalApiClient {
  /** The agent waits up to 30 s for a login; allow for that and a little more. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(40);

  /** No agent, or it cannot be talked to; the message is meant for a person. */
  public static final class AgentUnavailable extends IOException {
    public AgentUnavailable(String message) {
      super(message);
    }
  }

  private final Path socket;

  public LocalApiClient(Path socket) {
    this.socket = socket;
  }

  public ObjectNode newRequest(String command) {
    return ControlJson.MAPPER.createObjectNode().put("command", command);
  }

  public JsonNode call(ObjectNode request) throws IOException {
    return call(request, DEFAULT_TIMEOUT);
  }

  public JsonNode call(ObjectNode request, Duration timeout) throws IOException {
    if (!Files.exists(socket)) {
      throw new AgentUnavailable(
          "no agent running at " + socket + " (start one with: trellis agent)");
    }
    SocketChannel channel;
    try {
      channel = SocketChannel.open(UnixDomainSocketAddress.of(socket));
    } catch (AccessDeniedException e) {
      throw new AgentUnavailable(
          "permission denied on " + socket + " (run as root or as the agent's user)");
    } catch (IOException e) {
      String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
      if (why.toLowerCase().contains("permission denied")) {
        throw new AgentUnavailable(
            "permission denied on " + socket + " (run as root or as the agent's user)");
      }
      throw new AgentUnavailable(
          "no agent running at " + socket + " (" + why + "; start one with: trellis agent)");
    }
    // Blocking socket channels ignore read timeouts: read on another thread and bound the wait.
    try (channel) {
      channel.write(
          ByteBuffer.wrap(
              (ControlJson.MAPPER.writeValueAsString(request) + "\n")
                  .getBytes(StandardCharsets.UTF_8)));
      BufferedReader in =
          new BufferedReader(
              new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
      CompletableFuture<String> line =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  return in.readLine();
                } catch (IOException e) {
                  throw new UncheckedIOException(e);
                }
              },
              r -> Thread.ofVirtual().start(r));
      String reply = line.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      if (reply == null) {
        throw new AgentUnavailable(
            "the agent at " + socket + " closed the connection without answering");
      }
      return ControlJson.MAPPER.readTree(reply);
    } catch (TimeoutException e) {
      throw new AgentUnavailable(
          "the agent at " + socket + " did not answer within " + timeout.toSeconds() + " s");
    } catch (ExecutionException e) {
      throw new AgentUnavailable(
          "lost the connection to the agent at " + socket + ": " + e.getCause().getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AgentUnavailable("interrupted");
    }
  }
}
