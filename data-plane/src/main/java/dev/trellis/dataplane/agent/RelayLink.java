package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.relay.RelayClient;
import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.proto.disco.DiscoMessage;
import java.net.URI;
import java.util.Arrays;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * The agent's connection to its home relay, kept up while the node is logged in: reconnects with
 * backoff, and while connected lends itself to the WireGuard device (packets for peers without a
 * direct path) and to path discovery (disco messages through the relay).
 */
final class RelayLink implements AutoCloseable {
    static final long MAX_BACKOFF_MILLIS = 15_000;
    private static final Logger LOG = Logger.getLogger(RelayLink.class.getName());

    private final Device device;
    private final PathDiscovery discovery;
    private final byte[] nodePrivateKey;
    private final ScheduledExecutorService loop = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "relay-link");
        t.setDaemon(true);
        return t;
    });
    // loop-thread state
    private URI server;
    private RelayClient client;
    private int attempt;
    private long generation;

    RelayLink(Device device, PathDiscovery discovery, byte[] nodePrivateKey) {
        this.device = device;
        this.discovery = discovery;
        this.nodePrivateKey = nodePrivateKey.clone();
    }

    /** Keep a connection to {@code loginServer}'s relay (idempotent for the same server). */
    void connect(URI loginServer) {
        loop.execute(() -> {
            if (loginServer.equals(server) && client != null) {
                return;
            }
            drop();
            server = loginServer;
            attempt = 0;
            dial(++generation);
        });
    }

    void disconnect() {
        loop.execute(() -> {
            server = null;
            generation++;
            drop();
        });
    }

    /** Round trip to the relay over the live connection; fails when there is none. */
    java.util.concurrent.CompletableFuture<Long> pingRttNanos() {
        RelayClient c = client;
        return c == null || !c.isOpen()
                ? java.util.concurrent.CompletableFuture.failedFuture(new IllegalStateException("not connected to the relay"))
                : c.pingRttNanos();
    }

    boolean connected() {
        RelayClient c = client;
        return c != null && c.isOpen();
    }

    private void dial(long gen) {
        URI target = server;
        if (target == null || gen != generation) {
            return;
        }
        RelayClient.connect(target, nodePrivateKey, new RelayClient.Listener() {
            @Override
            public void onPacket(byte[] srcKey, byte[] packet, int len) {
                if (DiscoMessage.looksLikeDisco(packet, len)) {
                    discovery.onRelayedDisco(srcKey.clone(), Arrays.copyOf(packet, len));
                } else {
                    device.receiveFromRelay(packet, len);
                }
            }

            @Override
            public void onClosed(String reason) {
                loop.execute(() -> lost(gen, reason));
            }
        }).whenComplete((c, failure) -> loop.execute(() -> {
            if (gen != generation) {
                if (c != null) {
                    c.close();
                }
                return;
            }
            if (failure != null) {
                lost(gen, failure.getMessage());
                return;
            }
            attempt = 0;
            client = c;
            device.setRelayTransport((key, message, length) -> c.send(key, message, 0, length));
            discovery.setRelay((key, message) -> c.send(key, message, 0, message.length));
            LOG.info("connected to relay at " + target);
        }));
    }

    private void lost(long gen, String reason) {
        if (gen != generation) {
            return;
        }
        drop();
        long backoff = Math.min(MAX_BACKOFF_MILLIS, 500L << Math.min(attempt++, 5));
        backoff += ThreadLocalRandom.current().nextLong(backoff / 5 + 1);
        LOG.warning("relay connection lost (" + reason + "); retrying in " + backoff + " ms");
        loop.schedule(() -> dial(gen), backoff, TimeUnit.MILLISECONDS);
    }

    /** Without a relay the device falls back to direct endpoints only. */
    private void drop() {
        device.setRelayTransport(null);
        discovery.setRelay(null);
        if (client != null) {
            client.close();
            client = null;
        }
    }

    @Override
    public void close() {
        loop.execute(() -> {
            generation++;
            drop();
        });
        loop.shutdown();
    }
}
