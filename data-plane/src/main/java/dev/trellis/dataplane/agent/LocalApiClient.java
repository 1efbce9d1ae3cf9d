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
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/** Talks to a running agent's {@link LocalApi}: one request, one reply. */
public final class LocalApiClient {
  /** The agent waits up to 30 s for a login; allow for that and a little more. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(40);

  /** No agent, or it cannot be talked to; the message is meant for a person. */
  public static class AgentUnavailable extends IOException {
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

  /** Nothing listens on the socket (yet): no agent, or one still starting. */
  public static final class AgentNotRunning extends AgentUnavailable {
    public AgentNotRunning(String message) {
      super(message);
    }
  }

  public JsonNode call(ObjectNode request, Duration timeout) throws IOException {
    return call(request, timeout, progress -> {});
  }

  /**
   * Sends {@code request} and returns the reply; {@code {"progress": TEXT}} lines the agent sends
   * before it go to {@code progress}, on another thread.
   */
  public JsonNode call(ObjectNode request, Duration timeout, Consumer<String> progress)
      throws IOException {
    String denied =
        "permission denied on "
            + socket
            + ": the agent's socket is for root only; run the command with sudo";
    try {
      Files.readAttributes(socket, BasicFileAttributes.class);
    } catch (AccessDeniedException e) {
      throw new AgentUnavailable(denied); // the state directory itself is closed to us
    } catch (NoSuchFileException e) {
      throw new AgentNotRunning(
          "no agent running at " + socket + " (start one with: trellis agent)");
    }
    SocketChannel channel;
    try {
      channel = SocketChannel.open(UnixDomainSocketAddress.of(socket));
    } catch (AccessDeniedException e) {
      throw new AgentUnavailable(denied);
    } catch (IOException e) {
      String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
      if (why.toLowerCase().contains("permission denied")) {
        throw new AgentUnavailable(denied);
      }
      throw new AgentNotRunning(
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
                  String l;
                  while ((l = in.readLine()) != null) {
                    String text = LocalApi.progressText(l);
                    if (text == null) return l;
                    progress.accept(text);
                  }
                  return null;
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
