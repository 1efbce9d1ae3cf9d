package dev.trellis.dataplane.agent;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.proto.control.ControlChannel;
import dev.trellis.proto.control.ControlHandshake;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import java.io.IOException;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.UnresolvedAddressException;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.java_websocket.client.WebSocketClient;
import org.java_websocket.drafts.Draft_6455;
import org.java_websocket.exceptions.WebsocketNotConnectedException;
import org.java_websocket.framing.CloseFrame;
import org.java_websocket.handshake.ServerHandshake;
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

  /** How long a polite close waits for the server's close before dropping the connection. */
  private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(2);

  /** What sealing adds to a message (counter and tag), with room to spare. */
  private static final int MAX_SEAL_OVERHEAD = 1024;

  /** How the library reports an upgrade answered with another status than 101. */
  private static final Pattern REFUSED_STATUS =
      Pattern.compile("Invalid status code received: (\\d+)");

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
  private final ControlSocket socket;
  private final ControlChannel channel;
  private final Receiver receiver;

  private ControlClient(
      URI loginServer, ControlSocket socket, ControlChannel channel, Receiver receiver) {
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
    URI uri = controlUri(base);
    ControlSocket socket = new ControlSocket(uri, receiver);
    if (uri.getScheme().equals("wss")) {
      // The same trust as the HTTP client's (a lab's own CA, in tests a self-signed one).
      socket.setSocketFactory(http.sslContext().getSocketFactory());
    }
    // The library's connect() would start a platform thread to connect and read; its run() on a
    // virtual thread does the same (a simulated campus holds thousands of these in one JVM). It
    // still starts one platform thread that writes.
    Thread.ofVirtual().name("trellis-control-reader").start(socket);
    return receiver
        .opened
        .orTimeout(CONNECT_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
        .thenRun(() -> socket.send(handshake.initiation()))
        .thenCompose(
            ignored ->
                receiver.handshakeResponse.orTimeout(
                    HANDSHAKE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS))
        .thenApply(
            response -> {
              ControlChannel channel;
              try {
                channel = handshake.complete(response);
              } catch (ControlChannel.ChannelException e) {
                throw new CompletionException(new ConnectFailure(e.getMessage(), e));
              }
              ControlClient client = new ControlClient(base, socket, channel, receiver);
              receiver.attach(client);
              return client;
            })
        .whenComplete(
            (client, e) -> {
              if (e != null) {
                socket.abort();
              }
            });
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
    } else if (cause instanceof UpgradeRefused refused) {
      return new ConnectFailure(
          base
              + " is not a Trellis login server (WebSocket upgrade at /control answered "
              + refused.getMessage()
              + ")",
          cause);
    } else if (cause instanceof SocketTimeoutException) {
      why = "connection timed out";
    } else if (cause instanceof UnknownHostException) {
      why = "unknown host " + baseWithSlash.getHost();
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

  /**
   * Seals and queues in call order (the socket's writer thread sends in queue order); the future
   * fails if the connection is already gone. A connection that dies later ends the session through
   * the listener.
   */
  public synchronized CompletableFuture<Void> send(ControlMessage message) {
    if (!isOpen()) {
      return CompletableFuture.failedFuture(new IOException("control connection is closed"));
    }
    byte[] sealed = channel.seal(ControlJson.encode(message));
    try {
      socket.send(sealed);
    } catch (WebsocketNotConnectedException e) {
      return CompletableFuture.failedFuture(new IOException("control connection is closed", e));
    }
    return CompletableFuture.completedFuture(null);
  }

  /**
   * Closes politely (after queued sends), dropping the connection if the server does not answer in
   * 2 s.
   */
  @Override
  public synchronized void close() {
    if (receiver.closed.get()) {
      return;
    }
    receiver.finish("closed by the node");
    socket.close(CloseFrame.NORMAL, "bye");
    CompletableFuture.delayedExecutor(CLOSE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
        .execute(socket::abort);
  }

  /**
   * The WebSocket connection: one reader thread (a virtual one, which makes all listener calls) and
   * the library's writer thread. The end of the connection, however it comes, reaches {@link
   * Receiver#onClose}.
   */
  private static final class ControlSocket extends WebSocketClient {
    private final Receiver receiver;

    ControlSocket(URI uri, Receiver receiver) {
      super(
          uri,
          new Draft_6455(List.of(), ControlChannel.MAX_SERVER_MESSAGE + MAX_SEAL_OVERHEAD),
          Map.of(),
          (int) CONNECT_TIMEOUT.toMillis());
      this.receiver = receiver;
      setDaemon(true);
      setTcpNoDelay(true);
      // The control protocol has its own keepalive (Ping/Pong messages and a silence limit).
      setConnectionLostTimeout(0);
    }

    /** Drops the connection at once; the reader thread then reports the end. */
    void abort() {
      if (!isClosed()) {
        closeConnection(CloseFrame.ABNORMAL_CLOSE, "aborted by the node");
      }
    }

    @Override
    public void onOpen(ServerHandshake handshake) {
      receiver.opened.complete(null);
    }

    @Override
    public void onMessage(ByteBuffer message) {
      receiver.onBinary(message);
    }

    @Override
    public void onMessage(String message) {
      receiver.fail(this, "server sent a text message; the control channel is binary");
    }

    @Override
    public void onError(Exception error) {
      receiver.error = error;
    }

    @Override
    public void onClose(int code, String reason, boolean remote) {
      receiver.onClose(code, reason);
    }
  }

  /** Whole binary messages: the handshake response, then sealed JSON. */
  private static final class Receiver {
    final CompletableFuture<Void> opened = new CompletableFuture<>();
    final CompletableFuture<byte[]> handshakeResponse = new CompletableFuture<>();
    final AtomicBoolean closed = new AtomicBoolean();

    /** The library's last error, reported with the close that follows it (reader thread). */
    volatile Exception error;

    private final Listener listener;
    private volatile ControlClient client;

    Receiver(Listener listener) {
      this.listener = listener;
    }

    void attach(ControlClient c) {
      client = c;
    }

    void onBinary(ByteBuffer data) {
      byte[] whole = new byte[data.remaining()];
      data.get(whole);
      if (!handshakeResponse.isDone()) {
        handshakeResponse.complete(whole);
        return;
      }
      ControlClient c = client;
      if (c == null || closed.get()) {
        return;
      }
      ControlMessage message;
      try {
        message = ControlJson.decode(c.channel.open(whole));
      } catch (ControlChannel.ChannelException | IOException e) {
        fail(c.socket, "bad message from the server: " + e.getMessage());
        return;
      }
      try {
        listener.onMessage(message);
      } catch (RuntimeException e) {
        LOG.warn("control listener failed on " + message.getClass().getSimpleName(), e);
      }
    }

    void onClose(int code, String reason) {
      Exception e = error;
      IOException failure;
      if (!opened.isDone()) {
        failure = refusal(code, reason, e);
      } else {
        failure =
            new ConnectFailure(
                "the server closed the connection during the handshake: wrong server key, or machine refused",
                e);
      }
      opened.completeExceptionally(failure);
      handshakeResponse.completeExceptionally(failure);
      String why;
      if (e != null && code != CloseFrame.NORMAL) {
        why =
            "connection failed: "
                + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage());
      } else if (code == CloseFrame.TOOBIG) {
        why = "server message larger than " + ControlChannel.MAX_SERVER_MESSAGE + " bytes";
      } else {
        int status = code == CloseFrame.ABNORMAL_CLOSE || code < 0 ? 1006 : code;
        why =
            "server closed the connection ("
                + status
                + (reason == null || reason.isEmpty() || status == 1006 ? "" : " " + reason)
                + ")";
      }
      finish(why);
    }

    /** Why the connection never opened: the library's error, or a refused upgrade. */
    private static IOException refusal(int code, String reason, Exception e) {
      if (reason != null) {
        Matcher m = REFUSED_STATUS.matcher(reason);
        if (m.find()) {
          return new UpgradeRefused("HTTP " + m.group(1));
        }
      }
      if (e instanceof IOException io) {
        return io;
      }
      return new IOException(
          e != null
              ? e.toString()
              : "WebSocket closed before it opened (" + code + " " + reason + ")");
    }

    void fail(ControlSocket socket, String why) {
      socket.abort();
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

  /** The upgrade at /control was answered with something else than 101. */
  static final class UpgradeRefused extends IOException {
    UpgradeRefused(String message) {
      super(message);
    }
  }
}
