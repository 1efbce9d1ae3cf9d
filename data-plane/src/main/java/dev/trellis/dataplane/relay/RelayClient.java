package dev.trellis.dataplane.relay;

import dev.trellis.proto.relay.RelayFrame;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.HexFormat;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A node's connection to the relay at {@code <login server>/relay} (frame format and handshake:
 * {@link RelayFrame}). {@link #send} never blocks: packets wait in a bounded queue while the socket
 * is busy and are dropped (and counted) when it is full — WireGuard retransmits. Received packets,
 * PeerGone and the close go to a {@link Listener} on the WebSocket's thread, one call at a time.
 * Reconnecting is the caller's job.
 */
public final class RelayClient implements AutoCloseable {
  public static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);
  public static final Duration HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);

  /** Packets that may wait for the socket before new ones are dropped. */
  public static final int DEFAULT_SEND_QUEUE = 1024;

  private static final Logger LOG = LoggerFactory.getLogger(RelayClient.class);

  /**
   * What the relay says. {@link #onClosed} is called exactly once, last, and only after connect
   * succeeded.
   */
  public interface Listener {
    /**
     * A packet from the node with {@code srcKey}. {@code packet[0, len)} is only valid during the
     * call (the buffer is reused); {@code srcKey} is shared between calls and must not be changed.
     */
    void onPacket(byte[] srcKey, byte[] packet, int len);

    /**
     * The relay says {@code key} is not (or no longer) connected to it; {@code reason} is a
     * RelayFrame.GONE_* value.
     */
    default void onPeerGone(byte[] key, byte reason) {}

    /** A Health frame: empty means healthy. */
    default void onHealth(String problem) {}

    /**
     * The relay is restarting: reconnect in about {@code reconnectInMillis}, for up to {@code
     * tryForMillis}.
     */
    default void onRestarting(long reconnectInMillis, long tryForMillis) {}

    void onClosed(String reason);
  }

  /** A relay connection that could not be made or was refused, with the relay's reason. */
  public static final class RelayException extends IOException {
    public RelayException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /**
   * How to reach the relay: the raw upgrade, a WebSocket, or raw first and a WebSocket if the
   * upgrade is refused.
   */
  public enum Transport {
    RAW,
    WEBSOCKET,
    AUTO
  }

  private final Listener listener;
  private final byte[] nodePrivateKey;
  private final byte[] expectedRelayKey;
  private final ArrayBlockingQueue<ByteBuffer> packets;
  private final ConcurrentLinkedQueue<ByteBuffer> control = new ConcurrentLinkedQueue<>();
  private final AtomicLong sent = new AtomicLong();
  private final AtomicLong dropped = new AtomicLong();

  /** When the relay last sent anything (any frame: packets, KeepAlive, Pong). */
  private volatile long lastHeardNanos = System.nanoTime();

  private final CompletableFuture<byte[]> ready = new CompletableFuture<>();
  private final AtomicBoolean closed = new AtomicBoolean();
  private final AtomicBoolean closeReported = new AtomicBoolean();
  private volatile String closeReason;

  /** Set once connect has succeeded: the listener hears nothing before. */
  private volatile boolean attached;

  private volatile Wire wire;
  private byte[] relayKey;
  private byte[] lastSource;

  /** Destination of the last SendPacket written (writer side only); all zero: none yet. */
  private final byte[] lastDestination = new byte[RelayFrame.KEY_LENGTH];

  /** Pings we sent, by their data: who wants to know when the Pong comes back. */
  private final ConcurrentHashMap<String, Consumer<Void>> pongWaiters = new ConcurrentHashMap<>();

  private RelayClient(
      Listener listener, byte[] nodePrivateKey, byte[] expectedRelayKey, int sendQueue) {
    this.listener = listener;
    this.nodePrivateKey = nodePrivateKey.clone();
    this.expectedRelayKey = expectedRelayKey;
    this.packets = new ArrayBlockingQueue<>(sendQueue);
  }

  /**
   * What carries the frames: it takes them from the client's queues when woken and hands received
   * ones to {@link #onFrame}.
   */
  interface Wire {
    /** There is something in the queues. */
    void wake();

    /** Drop the connection now. */
    void abort();

    /** Close politely (best effort, bounded), then drop. */
    void close();

    String name();
  }

  /** {@code ws[s]://host:port/path/relay} for a login server {@code http[s]://host:port/path}. */
  public static URI relayUri(URI loginServer) {
    String scheme = loginServer.getScheme();
    if (scheme == null
        || !(scheme.equals("http")
            || scheme.equals("https")
            || scheme.equals("ws")
            || scheme.equals("wss"))
        || loginServer.getHost() == null) {
      throw new IllegalArgumentException(
          "login server must be an http:// or https:// URL, got '" + loginServer + "'");
    }
    String s = loginServer.toString();
    URI base = URI.create(s.endsWith("/") ? s : s + "/");
    URI http = base.resolve("relay");
    String ws = scheme.equals("https") || scheme.equals("wss") ? "wss" : "ws";
    return URI.create(ws + http.toString().substring(scheme.length()));
  }

  public static CompletableFuture<RelayClient> connect(
      URI loginServer, byte[] nodePrivateKey, Listener listener) {
    return connect(
        HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(CONNECT_TIMEOUT)
            .build(),
        loginServer,
        nodePrivateKey,
        null,
        listener);
  }

  public static CompletableFuture<RelayClient> connect(
      HttpClient http,
      URI loginServer,
      byte[] nodePrivateKey,
      byte[] expectedRelayKey,
      Listener listener) {
    return connect(http, loginServer, nodePrivateKey, expectedRelayKey, listener, Transport.AUTO);
  }

  /**
   * Connects to {@code loginServer}'s relay and authenticates with the node key. With {@code
   * expectedRelayKey} (the server's key from GET /key) a relay presenting another key is refused;
   * null accepts the key the relay presents. Fails with a {@link RelayException} carrying the
   * relay's Error when refused. {@code http} supplies the TLS settings (and, for WebSockets, the
   * connection).
   */
  public static CompletableFuture<RelayClient> connect(
      HttpClient http,
      URI loginServer,
      byte[] nodePrivateKey,
      byte[] expectedRelayKey,
      Listener listener,
      Transport transport) {
    URI uri;
    try {
      uri = relayUri(loginServer);
    } catch (IllegalArgumentException e) {
      return CompletableFuture.failedFuture(new RelayException(e.getMessage(), e));
    }
    CompletableFuture<RelayClient> result =
        switch (transport) {
          case RAW -> connectRaw(http, uri, nodePrivateKey, expectedRelayKey, listener);
          case WEBSOCKET -> connectWebSocket(http, uri, nodePrivateKey, expectedRelayKey, listener);
          case AUTO ->
              connectRaw(http, uri, nodePrivateKey, expectedRelayKey, listener)
                  .exceptionallyCompose(
                      e ->
                          unwrap(e) instanceof RawRelayWire.UpgradeRefused
                              ? connectWebSocket(
                                  http, uri, nodePrivateKey, expectedRelayKey, listener)
                              : CompletableFuture.failedFuture(e));
        };
    return result.exceptionallyCompose(
        e -> {
          Throwable cause = unwrap(e);
          if (cause instanceof RelayException) {
            return CompletableFuture.failedFuture(cause);
          }
          String why =
              cause instanceof TimeoutException
                  ? "no answer within " + HANDSHAKE_TIMEOUT.toSeconds() + " s"
                  : cause.getMessage() == null
                      ? cause.getClass().getSimpleName()
                      : cause.getMessage();
          return CompletableFuture.failedFuture(
              new RelayException("cannot connect to relay " + uri + ": " + why, cause));
        });
  }

  private static Throwable unwrap(Throwable e) {
    return e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
  }

  private static CompletableFuture<RelayClient> connectRaw(
      HttpClient http, URI uri, byte[] nodePrivateKey, byte[] expectedRelayKey, Listener listener) {
    RelayClient client =
        new RelayClient(listener, nodePrivateKey, expectedRelayKey, DEFAULT_SEND_QUEUE);
    return CompletableFuture.supplyAsync(
            () -> {
              try {
                return RawRelayWire.open(http, uri, client);
              } catch (IOException e) {
                throw new CompletionException(e);
              }
            },
            task -> Thread.ofVirtual().name("relay-connect").start(task))
        .thenCompose(
            w -> {
              client.wire = w;
              w.start();
              return client.awaitReady();
            });
  }

  private static CompletableFuture<RelayClient> connectWebSocket(
      HttpClient http, URI uri, byte[] nodePrivateKey, byte[] expectedRelayKey, Listener listener) {
    RelayClient client =
        new RelayClient(listener, nodePrivateKey, expectedRelayKey, DEFAULT_SEND_QUEUE);
    WebSocketWire w = new WebSocketWire(client);
    client.wire = w;
    return http.newWebSocketBuilder()
        .connectTimeout(CONNECT_TIMEOUT)
        .buildAsync(uri, w)
        .thenCompose(ws -> client.awaitReady());
  }

  private CompletableFuture<RelayClient> awaitReady() {
    return ready
        .orTimeout(HANDSHAKE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
        .whenComplete(
            (r, e) -> {
              if (e != null) {
                wire.abort();
                finish("handshake failed");
              }
            })
        .thenApply(
            key -> {
              attached = true;
              if (closed.get()) {
                reportClose();
              }
              return this;
            });
  }

  /** Which transport carries this connection: "raw" or "websocket". */
  public String transport() {
    return wire.name();
  }

  /** The relay's static public key, from its ServerHello. */
  public byte[] relayKey() {
    return relayKey.clone();
  }

  public boolean isOpen() {
    return !closed.get();
  }

  /**
   * How long the relay has been silent: a connection whose peer vanished (no RST, e.g. cut off)
   * only shows this way.
   */
  public long silentNanos() {
    return System.nanoTime() - lastHeardNanos;
  }

  /** Packets handed to the socket. */
  public long sent() {
    return sent.get();
  }

  /** Packets dropped because the socket was backed up (or closed). */
  public long dropped() {
    return dropped.get();
  }

  /**
   * Queues {@code packet[off, off+len)} for the node with {@code dstKey}; never blocks. Returns
   * false (and counts a drop) when the send queue is full or the connection is closed.
   */
  public boolean send(byte[] dstKey, byte[] packet, int off, int len) {
    if (closed.get()) {
      dropped.incrementAndGet();
      return false;
    }
    byte[] frame = RelayFrame.packetFrame(RelayFrame.SEND_PACKET, dstKey, packet, off, len);
    if (!packets.offer(ByteBuffer.wrap(frame))) {
      dropped.incrementAndGet();
      return false;
    }
    wire.wake();
    return true;
  }

  /**
   * Relay to relay only: queues {@code packet[off, off+len)} from node {@code srcKey} for node
   * {@code dstKey}, connected to the relay at the other end (a ForwardPacket). Never blocks; false
   * (and a drop counted) when the queue is full or the connection closed.
   */
  public boolean forward(byte[] srcKey, byte[] dstKey, byte[] packet, int off, int len) {
    if (closed.get()) {
      dropped.incrementAndGet();
      return false;
    }
    if (!packets.offer(
        ByteBuffer.wrap(RelayFrame.forwardFrame(srcKey, dstKey, packet, off, len)))) {
      dropped.incrementAndGet();
      return false;
    }
    wire.wake();
    return true;
  }

  /** Sends a Ping; the Pong is consumed silently (the connection's liveness shows in isOpen). */
  public void ping() {
    pingRttNanos();
  }

  /**
   * Sends a Ping and completes with the round-trip time when its Pong arrives (netcheck's relay
   * latency).
   */
  public CompletableFuture<Long> pingRttNanos() {
    byte[] data = new byte[RelayFrame.PING_LENGTH];
    ThreadLocalRandom.current().nextBytes(data);
    CompletableFuture<Long> rtt = new CompletableFuture<>();
    long sent = System.nanoTime();
    pongWaiters.put(HexFormat.of().formatHex(data), v -> rtt.complete(System.nanoTime() - sent));
    sendControl(RelayFrame.encode(new RelayFrame.Ping(data)));
    return rtt.orTimeout(5, TimeUnit.SECONDS)
        .whenComplete((v, e) -> pongWaiters.remove(HexFormat.of().formatHex(data)));
  }

  /** For tests and diagnostics: an arbitrary WebSocket message, as is. */
  public void sendRaw(byte[] message) {
    sendControl(message.clone());
  }

  private void sendControl(byte[] frame) {
    control.add(ByteBuffer.wrap(frame));
    wire.wake();
  }

  /**
   * The next frame to write, control frames first; null when both queues are empty. Only one writer
   * calls this at a time: a packet for the same destination as the previous one goes out as
   * SendSame.
   */
  ByteBuffer nextFrame() {
    ByteBuffer next = control.poll();
    if (next != null) {
      return next;
    }
    next = packets.poll();
    if (next == null
        || next.remaining() <= RelayFrame.PACKET_HEADER
        || next.get(0) != RelayFrame.SEND_PACKET) {
      return next;
    }
    if (Arrays.equals(
        lastDestination, 0, RelayFrame.KEY_LENGTH, next.array(), 1, RelayFrame.PACKET_HEADER)) {
      next.put(RelayFrame.KEY_LENGTH, RelayFrame.SEND_SAME);
      return next.position(RelayFrame.KEY_LENGTH).slice();
    }
    System.arraycopy(next.array(), 1, lastDestination, 0, RelayFrame.KEY_LENGTH);
    return next;
  }

  boolean hasFrames() {
    return !control.isEmpty() || !packets.isEmpty();
  }

  /** A frame was written (true) or failed to be (false). */
  void written(ByteBuffer frame, boolean ok) {
    if (!ok) {
      fail("send failed");
    } else if (frame.get(0) == RelayFrame.SEND_PACKET
        || frame.get(0) == RelayFrame.SEND_SAME
        || frame.get(0) == RelayFrame.FORWARD_PACKET) {
      sent.incrementAndGet();
    }
  }

  /** Closes politely; the wire bounds how long that may take. */
  @Override
  public void close() {
    if (closed.get()) {
      return;
    }
    finish("closed by the node");
    wire.close();
  }

  /**
   * One whole frame from the relay; the wire calls this one frame at a time. {@code buffer} may be
   * reused after.
   */
  void onFrame(byte[] buffer, int length) {
    try {
      handle(buffer, length);
    } catch (RelayFrame.FormatException e) {
      fail("bad frame from the relay: " + e.getMessage());
    }
  }

  private void handle(byte[] buffer, int length) throws RelayFrame.FormatException {
    lastHeardNanos = System.nanoTime();
    if (length == 0) {
      throw new RelayFrame.FormatException("empty relay frame");
    }
    byte type = buffer[0];
    if (type == RelayFrame.RECV_PACKET && ready.isDone() && !ready.isCompletedExceptionally()) {
      RelayFrame.validate(type, length);
      if (lastSource == null
          || !Arrays.equals(
              lastSource, 0, RelayFrame.KEY_LENGTH, buffer, 1, 1 + RelayFrame.KEY_LENGTH)) {
        lastSource = Arrays.copyOfRange(buffer, 1, 1 + RelayFrame.KEY_LENGTH);
      }
      deliver(buffer, RelayFrame.PACKET_HEADER, length - RelayFrame.PACKET_HEADER);
      return;
    }
    if (type == RelayFrame.RECV_SAME && ready.isDone() && !ready.isCompletedExceptionally()) {
      RelayFrame.validate(type, length);
      if (lastSource == null) {
        throw new RelayFrame.FormatException("RecvSame before any RecvPacket");
      }
      deliver(buffer, 1, length - 1);
      return;
    }
    RelayFrame.Frame frame = RelayFrame.parse(buffer, 0, length);
    switch (frame) {
      case RelayFrame.ServerHello hello -> onHello(hello);
      case RelayFrame.ServerReady r -> {
        if (relayKey == null) {
          throw new RelayFrame.FormatException("ServerReady before ServerHello");
        }
        ready.complete(relayKey);
      }
      case RelayFrame.Error e -> {
        ready.completeExceptionally(
            new RelayException("relay refused the connection: " + e.reason(), null));
        fail("relay error: " + e.reason());
      }
      case RelayFrame.Ping p -> sendControl(RelayFrame.encode(new RelayFrame.Pong(p.data())));
      case RelayFrame.PeerGone g -> call(() -> listener.onPeerGone(g.key(), g.reason()));
      case RelayFrame.Health h -> call(() -> listener.onHealth(h.problem()));
      case RelayFrame.Restarting r ->
          call(() -> listener.onRestarting(r.reconnectInMillis(), r.tryForMillis()));
      case RelayFrame.Pong p -> {
        var waiter = pongWaiters.remove(HexFormat.of().formatHex(p.data()));
        if (waiter != null) {
          waiter.accept(null);
        }
      }
      case RelayFrame.KeepAlive k -> {}
      case RelayFrame.RecvPacket p ->
          throw new RelayFrame.FormatException("packet before the handshake completed");
      case RelayFrame.RecvSame p ->
          throw new RelayFrame.FormatException("packet before the handshake completed");
      case RelayFrame.SendSame p -> throw new RelayFrame.FormatException("SendSame from the relay");
      case RelayFrame.ClientAuth a ->
          throw new RelayFrame.FormatException("ClientAuth from the relay");
      case RelayFrame.SendPacket p ->
          throw new RelayFrame.FormatException("SendPacket from the relay");
      case RelayFrame.ForwardPacket p ->
          throw new RelayFrame.FormatException("ForwardPacket from the relay");
    }
  }

  /**
   * The hot path: no parse object, no copy of the packet beyond moving it to the buffer's start.
   */
  private void deliver(byte[] buffer, int offset, int packetLength) {
    byte[] source = lastSource;
    System.arraycopy(buffer, offset, buffer, 0, packetLength);
    call(() -> listener.onPacket(source, buffer, packetLength));
  }

  private void onHello(RelayFrame.ServerHello hello) throws RelayFrame.FormatException {
    if (relayKey != null) {
      throw new RelayFrame.FormatException("second ServerHello");
    }
    if (expectedRelayKey != null && !MessageDigest.isEqual(expectedRelayKey, hello.relayKey())) {
      ready.completeExceptionally(
          new RelayException(
              "relay presented key "
                  + Base64.getEncoder().encodeToString(hello.relayKey())
                  + ", not the server's key",
              null));
      fail("unexpected relay key");
      return;
    }
    relayKey = hello.relayKey();
    RelayFrame.ClientAuth auth;
    try {
      auth = RelayFrame.authenticate(nodePrivateKey, hello);
    } catch (IllegalArgumentException e) {
      throw new RelayFrame.FormatException(e.getMessage());
    }
    sendControl(RelayFrame.encode(auth));
  }

  private void call(Runnable r) {
    if (!attached || closed.get()) {
      return;
    }
    try {
      r.run();
    } catch (RuntimeException e) {
      LOG.warn("relay listener failed", e);
    }
  }

  /** The relay closed the connection (with a WebSocket close code and reason, if any). */
  void onRemoteClose(String detail) {
    ready.completeExceptionally(
        new RelayException("relay closed the connection during the handshake" + detail, null));
    finish("relay closed the connection" + detail);
  }

  void onError(Throwable error) {
    ready.completeExceptionally(error);
    finish(
        "connection failed: "
            + (error.getMessage() == null ? error.getClass().getSimpleName() : error.getMessage()));
  }

  void fail(String why) {
    Wire w = wire;
    if (w != null) {
      w.abort();
    }
    ready.completeExceptionally(new RelayException(why, null));
    finish(why);
  }

  /** The first reason wins; the listener hears it if connect had succeeded. */
  void finish(String why) {
    if (closed.compareAndSet(false, true)) {
      closeReason = why;
      if (attached) {
        reportClose();
      }
    }
  }

  boolean isClosed() {
    return closed.get();
  }

  private void reportClose() {
    if (closeReported.compareAndSet(false, true)) {
      try {
        listener.onClosed(closeReason);
      } catch (RuntimeException e) {
        LOG.warn("relay listener failed on close", e);
      }
    }
  }
}
