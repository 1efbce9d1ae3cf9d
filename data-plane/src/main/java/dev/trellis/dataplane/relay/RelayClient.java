package dev.trellis.dataplane.relay;

import dev.trellis.proto.relay.RelayFrame;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A node's connection to the relay at {@code <login server>/relay} (frame format and handshake:
 * {@link RelayFrame}). {@link #send} never blocks: packets wait in a bounded queue while the
 * socket is busy and are dropped (and counted) when it is full — WireGuard retransmits.
 * Received packets, PeerGone and the close go to a {@link Listener} on the WebSocket's thread,
 * one call at a time. Reconnecting is the caller's job.
 */
public final class RelayClient implements AutoCloseable {
    public static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);
    public static final Duration HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
    /** Packets that may wait for the socket before new ones are dropped. */
    public static final int DEFAULT_SEND_QUEUE = 1024;
    private static final Logger LOG = Logger.getLogger(RelayClient.class.getName());

    /** What the relay says. {@link #onClosed} is called exactly once, last, and only after connect succeeded. */
    public interface Listener {
        /**
         * A packet from the node with {@code srcKey}. {@code packet[0, len)} is only valid during
         * the call (the buffer is reused); {@code srcKey} is shared between calls and must not be changed.
         */
        void onPacket(byte[] srcKey, byte[] packet, int len);

        /** The relay says {@code key} is not (or no longer) connected to it; {@code reason} is a RelayFrame.GONE_* value. */
        default void onPeerGone(byte[] key, byte reason) {}

        /** A Health frame: empty means healthy. */
        default void onHealth(String problem) {}

        /** The relay is restarting: reconnect in about {@code reconnectInMillis}, for up to {@code tryForMillis}. */
        default void onRestarting(long reconnectInMillis, long tryForMillis) {}

        void onClosed(String reason);
    }

    /** A relay connection that could not be made or was refused, with the relay's reason. */
    public static final class RelayException extends IOException {
        public RelayException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final WebSocket socket;
    private final Receiver receiver;
    private final byte[] relayKey;
    private final ArrayBlockingQueue<ByteBuffer> packets;
    private final ConcurrentLinkedQueue<ByteBuffer> control = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean sending = new AtomicBoolean();
    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();

    private RelayClient(WebSocket socket, Receiver receiver, byte[] relayKey, int sendQueue) {
        this.socket = socket;
        this.receiver = receiver;
        this.relayKey = relayKey;
        this.packets = new ArrayBlockingQueue<>(sendQueue);
    }

    /** {@code ws[s]://host:port/path/relay} for a login server {@code http[s]://host:port/path}. */
    public static URI relayUri(URI loginServer) {
        String scheme = loginServer.getScheme();
        if (scheme == null || !(scheme.equals("http") || scheme.equals("https") || scheme.equals("ws") || scheme.equals("wss"))
                || loginServer.getHost() == null) {
            throw new IllegalArgumentException("login server must be an http:// or https:// URL, got '" + loginServer + "'");
        }
        String s = loginServer.toString();
        URI base = URI.create(s.endsWith("/") ? s : s + "/");
        URI http = base.resolve("relay");
        String ws = scheme.equals("https") || scheme.equals("wss") ? "wss" : "ws";
        return URI.create(ws + http.toString().substring(scheme.length()));
    }

    public static CompletableFuture<RelayClient> connect(URI loginServer, byte[] nodePrivateKey, Listener listener) {
        return connect(HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(CONNECT_TIMEOUT).build(),
                loginServer, nodePrivateKey, null, listener);
    }

    /**
     * Connects to {@code loginServer}'s relay and authenticates with the node key. With
     * {@code expectedRelayKey} (the server's key from GET /key) a relay presenting another key is
     * refused; null accepts the key the relay presents. Fails with a {@link RelayException}
     * carrying the relay's Error when refused.
     */
    public static CompletableFuture<RelayClient> connect(HttpClient http, URI loginServer, byte[] nodePrivateKey,
                                                         byte[] expectedRelayKey, Listener listener) {
        URI uri;
        try {
            uri = relayUri(loginServer);
        } catch (IllegalArgumentException e) {
            return CompletableFuture.failedFuture(new RelayException(e.getMessage(), e));
        }
        Receiver receiver = new Receiver(listener, nodePrivateKey.clone(), expectedRelayKey);
        CompletableFuture<RelayClient> result = http.newWebSocketBuilder()
                .connectTimeout(CONNECT_TIMEOUT)
                .buildAsync(uri, receiver)
                .thenCompose(ws -> receiver.ready.orTimeout(HANDSHAKE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
                        .whenComplete((r, e) -> {
                            if (e != null) {
                                ws.abort();
                            }
                        })
                        .thenApply(relayKey -> {
                            RelayClient client = new RelayClient(ws, receiver, relayKey, DEFAULT_SEND_QUEUE);
                            receiver.attach(client);
                            return client;
                        }));
        return result.exceptionallyCompose(e -> {
            Throwable cause = e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
            if (cause instanceof RelayException) {
                return CompletableFuture.failedFuture(cause);
            }
            String why = cause instanceof java.util.concurrent.TimeoutException ? "no answer within " + HANDSHAKE_TIMEOUT.toSeconds() + " s"
                    : cause.getMessage() == null ? cause.getClass().getSimpleName() : cause.getMessage();
            return CompletableFuture.failedFuture(new RelayException("cannot connect to relay " + uri + ": " + why, cause));
        });
    }

    /** The relay's static public key, from its ServerHello. */
    public byte[] relayKey() {
        return relayKey.clone();
    }

    public boolean isOpen() {
        return !receiver.closed.get();
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
        if (receiver.closed.get()) {
            dropped.incrementAndGet();
            return false;
        }
        byte[] frame = RelayFrame.packetFrame(RelayFrame.SEND_PACKET, dstKey, packet, off, len);
        if (!packets.offer(ByteBuffer.wrap(frame))) {
            dropped.incrementAndGet();
            return false;
        }
        pump();
        return true;
    }

    /** Sends a Ping; the Pong is consumed silently (the connection's liveness shows in isOpen). */
    public void ping() {
        pingRttNanos();
    }

    /** Sends a Ping and completes with the round-trip time when its Pong arrives (netcheck's relay latency). */
    public CompletableFuture<Long> pingRttNanos() {
        byte[] data = new byte[RelayFrame.PING_LENGTH];
        java.util.concurrent.ThreadLocalRandom.current().nextBytes(data);
        CompletableFuture<Long> rtt = new CompletableFuture<>();
        long sent = System.nanoTime();
        receiver.pongWaiters.put(java.util.HexFormat.of().formatHex(data), v -> rtt.complete(System.nanoTime() - sent));
        sendControl(RelayFrame.encode(new RelayFrame.Ping(data)));
        return rtt.orTimeout(5, java.util.concurrent.TimeUnit.SECONDS)
                .whenComplete((v, e) -> receiver.pongWaiters.remove(java.util.HexFormat.of().formatHex(data)));
    }

    /** For tests and diagnostics: an arbitrary WebSocket message, as is. */
    public void sendRaw(byte[] message) {
        sendControl(message.clone());
    }

    private void sendControl(byte[] frame) {
        control.add(ByteBuffer.wrap(frame));
        pump();
    }

    /** One send in flight at a time (the JDK WebSocket's rule); control frames first. */
    private void pump() {
        while (sending.compareAndSet(false, true)) {
            ByteBuffer next = control.poll();
            if (next == null) {
                next = packets.poll();
            }
            if (next == null || receiver.closed.get()) {
                sending.set(false);
                if ((control.isEmpty() && packets.isEmpty()) || receiver.closed.get()) {
                    return;
                }
                continue;
            }
            boolean packet = next.get(0) == RelayFrame.SEND_PACKET;
            CompletableFuture<WebSocket> f = socket.sendBinary(next, true);
            if (f.isDone()) {
                finished(f.isCompletedExceptionally(), packet);
                sending.set(false);
                continue;
            }
            f.whenComplete((ws, e) -> {
                finished(e != null, packet);
                sending.set(false);
                pump();
            });
            return;
        }
    }

    private void finished(boolean failed, boolean packet) {
        if (failed) {
            receiver.fail(socket, "send failed");
        } else if (packet) {
            sent.incrementAndGet();
        }
    }

    /** Closes politely, aborting if the relay does not answer within 2 s. */
    @Override
    public void close() {
        if (receiver.closed.get()) {
            return;
        }
        receiver.finish("closed by the node");
        socket.sendClose(WebSocket.NORMAL_CLOSURE, "bye")
                .orTimeout(2, TimeUnit.SECONDS)
                .whenComplete((r, e) -> socket.abort());
    }

    /** Accumulates fragments until {@code last}, then handles one frame. */
    private static final class Receiver implements WebSocket.Listener {
        final CompletableFuture<byte[]> ready = new CompletableFuture<>();
        final AtomicBoolean closed = new AtomicBoolean();
        private final Listener listener;
        private final byte[] nodePrivateKey;
        private final byte[] expectedRelayKey;
        private byte[] relayKey;
        private byte[] partial = new byte[2048];
        private int partialLength;
        private byte[] lastSource = new byte[RelayFrame.KEY_LENGTH];
        private volatile RelayClient client;
        /** Pings we sent, by their data: who wants to know when the Pong comes back. */
        final java.util.concurrent.ConcurrentHashMap<String, java.util.function.Consumer<Void>> pongWaiters =
                new java.util.concurrent.ConcurrentHashMap<>();

        Receiver(Listener listener, byte[] nodePrivateKey, byte[] expectedRelayKey) {
            this.listener = listener;
            this.nodePrivateKey = nodePrivateKey;
            this.expectedRelayKey = expectedRelayKey;
        }

        private final AtomicBoolean closeReported = new AtomicBoolean();
        private volatile String closeReason;

        void attach(RelayClient c) {
            client = c;
            if (closed.get()) {
                reportClose();
            }
        }

        @Override
        public void onOpen(WebSocket ws) {
            ws.request(1);
        }

        @Override
        public CompletionStage<?> onBinary(WebSocket ws, ByteBuffer data, boolean last) {
            int n = data.remaining();
            if (partialLength + n > RelayFrame.MAX_FRAME) {
                fail(ws, "relay frame larger than " + RelayFrame.MAX_FRAME + " bytes");
                return null;
            }
            if (partialLength + n > partial.length) {
                partial = Arrays.copyOf(partial, Math.max(partialLength + n, Math.min(partial.length * 2, RelayFrame.MAX_FRAME)));
            }
            data.get(partial, partialLength, n);
            partialLength += n;
            if (last) {
                int length = partialLength;
                partialLength = 0;
                try {
                    handle(ws, partial, length);
                } catch (RelayFrame.FormatException e) {
                    fail(ws, "bad frame from the relay: " + e.getMessage());
                    return null;
                }
            }
            if (!closed.get()) {
                ws.request(1);
            }
            return null;
        }

        private void handle(WebSocket ws, byte[] buffer, int length) throws RelayFrame.FormatException {
            if (length == 0) {
                throw new RelayFrame.FormatException("empty relay frame");
            }
            byte type = buffer[0];
            if (type == RelayFrame.RECV_PACKET && ready.isDone() && !ready.isCompletedExceptionally()) {
                // The hot path: no parse object, no copy of the packet.
                RelayFrame.validate(type, length);
                if (!Arrays.equals(lastSource, 0, RelayFrame.KEY_LENGTH, buffer, 1, 1 + RelayFrame.KEY_LENGTH)) {
                    lastSource = Arrays.copyOfRange(buffer, 1, 1 + RelayFrame.KEY_LENGTH);
                }
                int packetLength = length - RelayFrame.PACKET_HEADER;
                System.arraycopy(buffer, RelayFrame.PACKET_HEADER, buffer, 0, packetLength);
                call(() -> listener.onPacket(lastSource, buffer, packetLength));
                return;
            }
            RelayFrame.Frame frame = RelayFrame.parse(buffer, 0, length);
            switch (frame) {
                case RelayFrame.ServerHello hello -> onHello(ws, hello);
                case RelayFrame.ServerReady r -> {
                    if (relayKey == null) {
                        throw new RelayFrame.FormatException("ServerReady before ServerHello");
                    }
                    ready.complete(relayKey);
                }
                case RelayFrame.Error e -> {
                    ready.completeExceptionally(new RelayException("relay refused the connection: " + e.reason(), null));
                    fail(ws, "relay error: " + e.reason());
                }
                case RelayFrame.Ping p -> {
                    RelayClient c = client;
                    if (c != null) {
                        c.sendControl(RelayFrame.encode(new RelayFrame.Pong(p.data())));
                    }
                }
                case RelayFrame.PeerGone g -> call(() -> listener.onPeerGone(g.key(), g.reason()));
                case RelayFrame.Health h -> call(() -> listener.onHealth(h.problem()));
                case RelayFrame.Restarting r -> call(() -> listener.onRestarting(r.reconnectInMillis(), r.tryForMillis()));
                case RelayFrame.Pong p -> {
                    var waiter = pongWaiters.remove(java.util.HexFormat.of().formatHex(p.data()));
                    if (waiter != null) {
                        waiter.accept(null);
                    }
                }
                case RelayFrame.KeepAlive k -> { }
                case RelayFrame.RecvPacket p -> throw new RelayFrame.FormatException("packet before the handshake completed");
                case RelayFrame.ClientAuth a -> throw new RelayFrame.FormatException("ClientAuth from the relay");
                case RelayFrame.SendPacket p -> throw new RelayFrame.FormatException("SendPacket from the relay");
            }
        }

        private void onHello(WebSocket ws, RelayFrame.ServerHello hello) throws RelayFrame.FormatException {
            if (relayKey != null) {
                throw new RelayFrame.FormatException("second ServerHello");
            }
            if (expectedRelayKey != null && !MessageDigest.isEqual(expectedRelayKey, hello.relayKey())) {
                ready.completeExceptionally(new RelayException("relay presented key " + Base64.getEncoder().encodeToString(hello.relayKey())
                        + ", not the server's key", null));
                fail(ws, "unexpected relay key");
                return;
            }
            relayKey = hello.relayKey();
            RelayFrame.ClientAuth auth;
            try {
                auth = RelayFrame.authenticate(nodePrivateKey, hello);
            } catch (IllegalArgumentException e) {
                throw new RelayFrame.FormatException(e.getMessage());
            }
            ws.sendBinary(ByteBuffer.wrap(RelayFrame.encode(auth)), true);
        }

        private void call(Runnable r) {
            if (client == null || closed.get()) {
                return;
            }
            try {
                r.run();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "relay listener failed", e);
            }
        }

        @Override
        public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
            fail(ws, "relay sent a text message");
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket ws, int statusCode, String reason) {
            ready.completeExceptionally(new RelayException("relay closed the connection during the handshake ("
                    + statusCode + (reason == null || reason.isEmpty() ? "" : " " + reason) + ")", null));
            finish("relay closed the connection (" + statusCode + (reason == null || reason.isEmpty() ? "" : " " + reason) + ")");
            return null;
        }

        @Override
        public void onError(WebSocket ws, Throwable error) {
            ready.completeExceptionally(error);
            finish("connection failed: " + (error.getMessage() == null ? error.getClass().getSimpleName() : error.getMessage()));
        }

        void fail(WebSocket ws, String why) {
            ws.abort();
            ready.completeExceptionally(new RelayException(why, null));
            finish(why);
        }

        /** The first reason wins; the listener hears it if connect had succeeded. */
        void finish(String why) {
            if (closed.compareAndSet(false, true)) {
                closeReason = why;
                if (client != null) {
                    reportClose();
                }
            }
        }

        private void reportClose() {
            if (closeReported.compareAndSet(false, true)) {
                try {
                    listener.onClosed(closeReason);
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "relay listener failed on close", e);
                }
            }
        }
    }
}
