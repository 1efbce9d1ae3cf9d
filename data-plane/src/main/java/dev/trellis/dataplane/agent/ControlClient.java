package dev.trellis.dataplane.agent;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.proto.control.ControlChannel;
import dev.trellis.proto.control.ControlHandshake;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.nio.ByteBuffer;
import java.nio.channels.UnresolvedAddressException;
import java.time.Duration;
import java.util.Base64;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's end of the control channel: fetches the server's key ({@code GET /key}), opens the
 * WebSocket at {@code /control}, runs the Noise handshake, then seals and opens {@link
 * ControlMessage}s. Messages and the end of the connection go to a {@link Listener}, one call at a
 * time in arrival order, on the WebSocket's thread: listeners hand work off rather than block.
 */
public final class ControlClient implements AutoCloseable {
  public static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);
  public static final Duration HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
  private static final Logger LOG = LoggerFactory.getLogger(ControlClient.class);

  /** Receives what the server says; {@link #onClosed} is called exactly once, last. */
  public interface Listener {
    void onMessage(ControlMessage message);

    void onClosed(String reason);
  }

  /** A connection that could not be made, with a message fit for a person. */
  public static final class ConnectFailure extends IOException {
    public ConnectFailure(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private final URI loginServer;
  private final WebSocket socket;
  private final ControlChannel channel;
  private final Receiver receiver;
  private CompletableFuture<?> sendChain = CompletableFuture.completedFuture(null);

  private ControlClient(
      URI loginServer, WebSocket socket, ControlChannel channel, Receiver receiver) {
    this.loginServer = loginServer;
    this.socket = socket;
    this.channel = channel;
    this.receiver = receiver;
  }

  /** One HTTP client for the agent's lifetime; HTTP/1.1 because WebSockets upgrade from it. */
  public static HttpClient newHttpClient() {
    return HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(CONNECT_TIMEOUT)
        .followRedirects(HttpClient.Redirect.NORMAL)
        .build();
  }

  /**
   * Connects and completes the handshake; fails with a {@link ConnectFailure} naming the server and
   * what went wrong. The listener hears nothing before the returned future completes.
   */
  public static CompletableFuture<ControlClient> connect(
      HttpClient http, URI loginServer, byte[] machinePrivateKey, Listener listener) {
    URI base;
    try {
      base = normalize(loginServer);
    } catch (IllegalArgumentException e) {
      return CompletableFuture.failedFuture(new ConnectFailure(e.getMessage(), e));
    }
    HttpRequest keyRequest =
        HttpRequest.newBuilder(base.resolve("key")).timeout(CONNECT_TIMEOUT).GET().build();
    return http.sendAsync(keyRequest, HttpResponse.BodyHandlers.ofByteArray())
        .thenApply(response -> serverKey(base, response))
        .thenCompose(serverKey -> openControl(http, base, machinePrivateKey, serverKey, listener))
        .exceptionallyCompose(e -> CompletableFuture.failedFuture(explain(base, e)));
  }

  /** The server's base URL with a trailing slash, so "key" and "control" resolve beneath it. */
  static URI normalize(URI loginServer) {
    String scheme = loginServer.getScheme();
    if (scheme == null
        || !(scheme.equals("http") || scheme.equals("https"))
        || loginServer.getHost() == null) {
      throw new IllegalArgumentException(
          "login server must be an http:// or https:// URL, got '" + loginServer + "'");
    }
    String s = loginServer.toString();
    return URI.create(s.endsWith("/") ? s : s + "/");
  }

  private static String display(URI base) {
    String s = base.toString();
    return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
  }

  static URI controlUri(URI base) {
    URI http = base.resolve("control");
    String scheme = http.getScheme().equals("https") ? "wss" : "ws";
    return URI.create(scheme + http.toString().substring(http.getScheme().length()));
  }

  private static byte[] serverKey(URI base, HttpResponse<byte[]> response) {
    if (response.statusCode() != 200) {
      throw new CompletionException(
          new ConnectFailure(
              display(base)
                  + " is not a Trellis login server (GET /key answered HTTP "
                  + response.statusCode()
                  + ")",
              null));
    }
    try {
      JsonNode json = ControlJson.MAPPER.readTree(response.body());
      byte[] key = Base64.getDecoder().decode(json.path("publicKey").asText(""));
      if (key.length != 32) {
        throw new IllegalArgumentException("key is " + key.length + " bytes");
      }
      return key;
    } catch (IOException | IllegalArgumentException e) {
      throw new CompletionException(
          new ConnectFailure(
              display(base)
                  + " is not a Trellis login server (GET /key did not return a public key)",
              e));
    }
  }

  private static CompletableFuture<ControlClient> openControl(
      HttpClient http, URI base, byte[] machinePrivateKey, byte[] serverKey, Listener listener) {
    ControlHandshake.Client handshake = new ControlHandshake.Client(machinePrivateKey, serverKey);
    Receiver receiver = new Receiver(listener);
    return http.newWebSocketBuilder()
        .connectTimeout(CONNECT_TIMEOUT)
        .buildAsync(controlUri(base), receiver)
        .thenCompose(ws -> ws.sendBinary(ByteBuffer.wrap(handshake.initiation()), true))
        .thenCompose(
            ws ->
                receiver
                    .handshakeResponse
                    .orTimeout(HANDSHAKE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
                    .whenComplete(
                        (r, e) -> {
                          if (e != null) {
                            ws.abort();
                          }
                        })
                    .thenApply(
                        response -> {
                          ControlChannel channel;
                          try {
                            channel = handshake.complete(response);
                          } catch (ControlChannel.ChannelException e) {
                            ws.abort();
                            throw new CompletionException(new ConnectFailure(e.getMessage(), e));
                          }
                          ControlClient client = new ControlClient(base, ws, channel, receiver);
                          receiver.attach(client);
                          return client;
                        }));
  }

  /** A one-line explanation of a failed {@link #connect} or send. */
  public static String describe(Throwable e) {
    Throwable cause = unwrap(e);
    return cause.getMessage() != null ? cause.getMessage() : cause.getClass().getSimpleName();
  }

  private static Throwable unwrap(Throwable e) {
    Throwable cause = e;
    while ((cause instanceof CompletionException || cause instanceof ExecutionException)
        && cause.getCause() != null) {
      cause = cause.getCause();
    }
    return cause;
  }

  private static ConnectFailure explain(URI baseWithSlash, Throwable e) {
    Throwable cause = unwrap(e);
    String base = baseWithSlash.toString().substring(0, baseWithSlash.toString().length() - 1);
    if (cause instanceof ConnectFailure f) {
      return f;
    }
    String why;
    if (cause instanceof HttpConnectTimeoutException) {
      why = "connection timed out";
    } else if (cause instanceof HttpTimeoutException || cause instanceof TimeoutException) {
      why = "no answer within " + HANDSHAKE_TIMEOUT.toSeconds() + " s";
    } else if (cause instanceof ConnectException) {
      why =
          cause.getMessage() == null || cause.getMessage().isEmpty()
              ? "connection refused"
              : cause.getMessage();
      if (cause.getCause() instanceof UnresolvedAddressException) {
        why = "unknown host " + baseWithSlash.getHost();
      }
    } else if (cause instanceof WebSocketHandshakeException w) {
      return new ConnectFailure(
          base
              + " is not a Trellis login server (WebSocket upgrade at /control answered HTTP "
              + w.getResponse().statusCode()
              + ")",
          cause);
    } else {
      why =
          cause.getClass().getSimpleName()
              + (cause.getMessage() == null ? "" : ": " + cause.getMessage());
    }
    return new ConnectFailure("cannot reach login server " + base + ": " + why, cause);
  }

  public URI loginServer() {
    return loginServer;
  }

  public boolean isOpen() {
    return !receiver.closed.get();
  }

  /** Seals and sends in call order; the future fails if the connection is gone. */
  public synchronized CompletableFuture<Void> send(ControlMessage message) {
    if (!isOpen()) {
      return CompletableFuture.failedFuture(new IOException("control connection is closed"));
    }
    // Counters must reach the wire in the order they were sealed, and the JDK WebSocket allows
    // one outstanding send: seal here, chain the sends.
    byte[] sealed = channel.seal(ControlJson.encode(message));
    CompletableFuture<Void> sent =
        sendChain
            .handle((r, e) -> null)
            .thenCompose(ignored -> socket.sendBinary(ByteBuffer.wrap(sealed), true))
            .thenApply(ws -> null);
    // The JDK WebSocket reports a connection that dies under a send only to that send, not to the
    // listener: end the session here, or the node would wait for the silence limit to notice.
    sent.whenComplete(
        (r, e) -> {
          if (e != null && !receiver.closed.get()) {
            socket.abort();
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            receiver.finish(
                "connection failed while sending: "
                    + (cause.getMessage() == null
                        ? cause.getClass().getSimpleName()
                        : cause.getMessage()));
          }
        });
    sendChain = sent;
    return sent;
  }

  /** Closes politely (after queued sends), aborting if the server does not answer in 2 s. */
  @Override
  public synchronized void close() {
    if (receiver.closed.get()) {
      return;
    }
    sendChain
        .handle((r, e) -> null)
        .thenCompose(ignored -> socket.sendClose(WebSocket.NORMAL_CLOSURE, "bye"))
        .orTimeout(2, TimeUnit.SECONDS)
        .whenComplete((r, e) -> socket.abort());
    receiver.finish("closed by the node");
  }

  /** Accumulates fragments into whole binary messages, then handshake response or sealed JSON. */
  private static final class Receiver implements WebSocket.Listener {
    final CompletableFuture<byte[]> handshakeResponse = new CompletableFuture<>();
    final AtomicBoolean closed = new AtomicBoolean();

    /**
     * Reassembly buffers larger than this are dropped after use instead of kept for the next
     * message.
     */
    private static final int KEEP_BUFFER_UP_TO = 64 * 1024;

    private final Listener listener;
    private ByteArrayOutputStream partial = new ByteArrayOutputStream();
    private volatile ControlClient client;

    Receiver(Listener listener) {
      this.listener = listener;
    }

    void attach(ControlClient c) {
      client = c;
    }

    @Override
    public void onOpen(WebSocket ws) {
      ws.request(1);
    }

    @Override
    public CompletionStage<?> onBinary(WebSocket ws, ByteBuffer data, boolean last) {
      if (partial.size() + data.remaining() > ControlChannel.MAX_SERVER_MESSAGE) {
        fail(ws, "server message larger than " + ControlChannel.MAX_SERVER_MESSAGE + " bytes");
        return null;
      }
      byte[] chunk = new byte[data.remaining()];
      data.get(chunk);
      partial.writeBytes(chunk);
      if (last) {
        byte[] whole = partial.toByteArray();
        if (whole.length > KEEP_BUFFER_UP_TO) {
          // reset() would keep the grown array: after a full map of a large network,
          // megabytes pinned for the connection's lifetime (10k nodes: ~3 MB map).
          partial = new ByteArrayOutputStream();
        } else {
          partial.reset();
        }
        if (!handshakeResponse.isDone()) {
          handshakeResponse.complete(whole);
        } else {
          deliver(ws, whole);
        }
      }
      ws.request(1);
      return null;
    }

    private void deliver(WebSocket ws, byte[] sealed) {
      ControlClient c = client;
      if (c == null || closed.get()) {
        return;
      }
      ControlMessage message;
      try {
        message = ControlJson.decode(c.channel.open(sealed));
      } catch (ControlChannel.ChannelException | IOException e) {
        fail(ws, "bad message from the server: " + e.getMessage());
        return;
      }
      try {
        listener.onMessage(message);
      } catch (RuntimeException e) {
        LOG.warn("control listener failed on " + message.getClass().getSimpleName(), e);
      }
    }

    @Override
    public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
      fail(ws, "server sent a text message; the control channel is binary");
      return null;
    }

    @Override
    public CompletionStage<?> onClose(WebSocket ws, int statusCode, String reason) {
      String why =
          "server closed the connection ("
              + statusCode
              + (reason == null || reason.isEmpty() ? "" : " " + reason)
              + ")";
      handshakeResponse.completeExceptionally(
          new ConnectFailure(
              "the server closed the connection during the handshake: wrong server key, or machine refused",
              null));
      finish(why);
      return null;
    }

    @Override
    public void onError(WebSocket ws, Throwable error) {
      handshakeResponse.completeExceptionally(error);
      finish(
          "connection failed: "
              + (error.getMessage() == null
                  ? error.getClass().getSimpleName()
                  : error.getMessage()));
    }

    private void fail(WebSocket ws, String why) {
      ws.abort();
      handshakeResponse.completeExceptionally(new ConnectFailure(why, null));
      finish(why);
    }

    void finish(String why) {
      if (closed.compareAndSet(false, true) && client != null) {
        try {
          listener.onClosed(why);
        } catch (RuntimeException e) {
          LOG.warn("control listener failed on close", e);
        }
      }
    }
  }
}
