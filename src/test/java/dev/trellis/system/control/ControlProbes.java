package dev.trellis.system.control;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.proto.control.ControlJson;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * HTTP and WebSocket requests from the test JVM to the server (through the lab's root-namespace
 * veth), for probing the admin API and the control endpoint with bad input.
 */
final class ControlProbes implements AutoCloseable {
  static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(15);

  private final URI base;
  private final String apiKey;
  private final HttpClient http =
      HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(5))
          .build();

  ControlProbes(String serverUrl, String apiKey) {
    this.base = URI.create(serverUrl.endsWith("/") ? serverUrl : serverUrl + "/");
    this.apiKey = apiKey;
  }

  HttpClient http() {
    return http;
  }

  URI base() {
    return base;
  }

  record Reply(int status, String body) {
    @Override
    public String toString() {
      return "HTTP " + status + " " + (body.length() > 300 ? body.substring(0, 300) + "…" : body);
    }
  }

  /** Authorization header values: the real key, none, or anything else. */
  String bearer() {
    return "Bearer " + apiKey;
  }

  /**
   * One request; {@code authorization} null sends no Authorization header; {@code body} null sends
   * none.
   */
  Reply send(String method, String path, String authorization, byte[] body, boolean chunked) {
    HttpRequest.Builder b = HttpRequest.newBuilder(base.resolve(path)).timeout(REQUEST_TIMEOUT);
    if (authorization != null) {
      b.header("Authorization", authorization);
    }
    HttpRequest.BodyPublisher publisher;
    if (body == null) {
      publisher = HttpRequest.BodyPublishers.noBody();
    } else {
      b.header("Content-Type", "application/json");
      publisher =
          chunked
              ? HttpRequest.BodyPublishers.ofInputStream(
                  () -> new ByteArrayInputStream(body)) // unknown length: chunked
              : HttpRequest.BodyPublishers.ofByteArray(body);
    }
    b.method(method, publisher);
    try {
      HttpResponse<String> r =
          http.send(b.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
      return new Reply(r.statusCode(), r.body());
    } catch (IOException e) {
      throw new AssertionError(method + " " + path + " failed: " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted", e);
    }
  }

  /**
   * Like {@link #send(String, String, String, byte[], boolean)} for a body beyond the server-wide
   * request limit: the server answers 413 and closes without reading the rest, and the unread bytes
   * make the kernel reset the connection, which may destroy the answer before the client reads it.
   * The JDK's client then reports "Broken pipe", "Connection reset" or "header parser received no
   * bytes", depending on the moment. Any such end of the connection is returned as status 0; a
   * failure that is not an I/O one fails the test.
   */
  Reply sendRefusedMidBody(String method, String path, String authorization, byte[] body) {
    try {
      return send(method, path, authorization, body, true);
    } catch (AssertionError e) {
      if (e.getCause() instanceof IOException io) {
        return new Reply(0, "connection ended by the server while sending: " + io);
      }
      throw e;
    }
  }

  Reply send(String method, String path, String authorization, String body) {
    return send(
        method,
        path,
        authorization,
        body == null ? null : body.getBytes(StandardCharsets.UTF_8),
        false);
  }

  /** The server's static public key from {@code GET /key}. */
  byte[] serverPublicKey() {
    Reply r = send("GET", "key", null, null);
    if (r.status() != 200) {
      throw new AssertionError("GET /key: " + r);
    }
    try {
      JsonNode json = ControlJson.MAPPER.readTree(r.body());
      return Base64.getDecoder().decode(json.path("publicKey").asText());
    } catch (IOException e) {
      throw new AssertionError("GET /key: " + r, e);
    }
  }

  // ---- WebSocket ---------------------------------------------------------------------------

  URI controlUri() {
    URI http = base.resolve("control");
    return URI.create("ws" + http.toString().substring("http".length()));
  }

  /**
   * Opens a WebSocket to {@code /control} that records what the server sends and when it closes.
   */
  Socket openControl() {
    Socket socket = new Socket();
    try {
      socket.ws =
          http.newWebSocketBuilder()
              .connectTimeout(Duration.ofSeconds(5))
              .buildAsync(controlUri(), socket.listener)
              .get(15, TimeUnit.SECONDS);
    } catch (ExecutionException | TimeoutException e) {
      throw new AssertionError("WebSocket to " + controlUri() + " failed: " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted", e);
    }
    return socket;
  }

  /** One probing WebSocket: binary messages received (whole), and how it ended. */
  static final class Socket implements AutoCloseable {
    final List<byte[]> received = new CopyOnWriteArrayList<>();
    final CompletableFuture<String> closed = new CompletableFuture<>();
    final CompletableFuture<byte[]> firstMessage = new CompletableFuture<>();
    WebSocket ws;
    final WebSocket.Listener listener =
        new WebSocket.Listener() {
          private final ByteArrayOutputStream partial = new ByteArrayOutputStream();

          @Override
          public void onOpen(WebSocket webSocket) {
            webSocket.request(1);
          }

          @Override
          public CompletionStage<?> onBinary(WebSocket webSocket, ByteBuffer data, boolean last) {
            byte[] chunk = new byte[data.remaining()];
            data.get(chunk);
            partial.writeBytes(chunk);
            if (last) {
              byte[] whole = partial.toByteArray();
              partial.reset();
              received.add(whole);
              firstMessage.complete(whole);
            }
            webSocket.request(1);
            return null;
          }

          @Override
          public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
            received.add(data.toString().getBytes(StandardCharsets.UTF_8));
            webSocket.request(1);
            return null;
          }

          @Override
          public CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
            closed.complete(
                "close frame "
                    + statusCode
                    + (reason == null || reason.isEmpty() ? "" : " " + reason));
            firstMessage.completeExceptionally(new IOException("closed"));
            return null;
          }

          @Override
          public void onError(WebSocket webSocket, Throwable error) {
            closed.complete("error " + error);
            firstMessage.completeExceptionally(error);
          }
        };

    /** Sends one binary message; a failure (the server already hung up) is returned, not thrown. */
    Throwable sendBinary(byte[] data) {
      return await(ws.sendBinary(ByteBuffer.wrap(data), true));
    }

    Throwable sendText(String text) {
      return await(ws.sendText(text, true));
    }

    private static Throwable await(CompletableFuture<WebSocket> sent) {
      try {
        sent.get(20, TimeUnit.SECONDS);
        return null;
      } catch (ExecutionException e) {
        return e.getCause();
      } catch (TimeoutException e) {
        return e;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError("interrupted", e);
      }
    }

    /** How the connection ended, or null if it is still open after {@code timeout}. */
    String awaitClosed(Duration timeout) {
      try {
        return closed.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      } catch (TimeoutException e) {
        return null;
      } catch (ExecutionException e) {
        return "failed: " + e.getCause();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError("interrupted", e);
      }
    }

    /**
     * The first whole message, or null if none arrives within {@code timeout} (or the socket closes
     * first).
     */
    byte[] awaitFirstMessage(Duration timeout) {
      try {
        return firstMessage.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      } catch (TimeoutException | ExecutionException e) {
        return null;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError("interrupted", e);
      }
    }

    List<Integer> receivedSizes() {
      List<Integer> sizes = new ArrayList<>();
      received.forEach(m -> sizes.add(m.length));
      return sizes;
    }

    @Override
    public void close() {
      if (ws != null) {
        ws.abort();
      }
    }
  }

  @Override
  public void close() {
    http.close();
  }
}
