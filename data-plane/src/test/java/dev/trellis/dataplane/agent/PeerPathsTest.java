package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.trellis.dataplane.stun.StunResponder;
import dev.trellis.dataplane.uapi.UapiProtocol;
import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.dataplane.wireguard.MemoryTunnel;
import dev.trellis.dataplane.wireguard.Timing;
import dev.trellis.proto.wireguard.Curve25519;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Two devices on loopback UDP, an in-process relay, and path discovery choosing between them. */
@Timeout(60)
class PeerPathsTest {
  private final List<AutoCloseable> closeables = new ArrayList<>();

  @AfterEach
  void close() throws Exception {
    for (int i = closeables.size() - 1; i >= 0; i--) {
      closeables.get(i).close();
    }
  }

  private record Side(
      Device device,
      MemoryTunnel tunnel,
      byte[] privateKey,
      byte[] publicKey,
      PeerPaths discovery) {
    String key() {
      return Base64.getEncoder().encodeToString(publicKey);
    }

    InetSocketAddress address() {
      return new InetSocketAddress("127.0.0.1", device.listenPort());
    }
  }

  private Side side(String name) throws Exception {
    MemoryTunnel tunnel = new MemoryTunnel(name);
    Device device = new Device(tunnel, Timing.DEFAULT);
    closeables.add(device);
    device.start();
    byte[] priv = Curve25519.generatePrivateKey();
    UapiProtocol.set(device, List.of("private_key=" + HexFormat.of().formatHex(priv)));
    PeerPaths discovery =
        new PeerPaths(device, priv, () -> List.of("127.0.0.1:" + device.listenPort()));
    closeables.add(discovery);
    discovery.attach();
    return new Side(device, tunnel, priv, Curve25519.publicKey(priv), discovery);
  }

  private static boolean direct(Side on, Side peer) throws Exception {
    PeerPath.Status s = on.discovery().statuses().get(peer.key());
    return s != null && s.direct();
  }

  private static void await(BooleanSupplier condition, long seconds, String what)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        fail("timed out waiting for " + what);
      }
      Thread.sleep(50);
    }
  }

  /** A small IPv4/UDP datagram from 100.64.0.1 to 100.64.0.2: data for the peer B. */
  private static byte[] udpTo100_64_0_2() {
    byte[] p = new byte[28 + 4];
    p[0] = 0x45;
    p[3] = (byte) p.length;
    p[8] = 64;
    p[9] = 17;
    byte[] src = {100, 64, 0, 1};
    byte[] dst = {100, 64, 0, 2};
    System.arraycopy(src, 0, p, 12, 4);
    System.arraycopy(dst, 0, p, 16, 4);
    p[21] = 9;
    p[23] = 9;
    p[25] = 12;
    return p;
  }

  @Test
  void findsTheDirectPathThenFallsBackToTheRelayWhenItStops() throws Exception {
    Side a = side("pdA");
    Side b = side("pdB");
    ExecutorService delivery = Executors.newSingleThreadExecutor();
    closeables.add(delivery::shutdownNow);
    Map<String, Side> byKey = Map.of(a.key(), a, b.key(), b);
    // The relay stand-in delivers disco messages to the addressee's discovery.
    for (Side s : List.of(a, b)) {
      s.discovery()
          .setRelay(
              new PeerPaths.Relay() {
                @Override
                public boolean canSend(byte[] key) {
                  return true;
                }

                @Override
                public boolean send(byte[] key, byte[] message, int offset, int length) {
                  Side to = byKey.get(Base64.getEncoder().encodeToString(key));
                  byte[] copy = Arrays.copyOfRange(message, offset, offset + length);
                  delivery.execute(
                      () -> to.discovery().receiveRelayed(s.publicKey(), copy, copy.length));
                  return true;
                }
              });
    }
    UapiProtocol.set(
        a.device(),
        List.of(
            "public_key=" + HexFormat.of().formatHex(b.publicKey()), "allowed_ip=100.64.0.2/32"));
    UapiProtocol.set(
        b.device(),
        List.of(
            "public_key=" + HexFormat.of().formatHex(a.publicKey()), "allowed_ip=100.64.0.1/32"));
    // Only A knows a candidate for B; B learns A's address from A's probes and CallMeMaybe.
    a.discovery().setPeers(Map.of(b.key(), new PeerPaths.Peer("pdB", List.of(b.address()))));
    b.discovery().setPeers(Map.of(a.key(), new PeerPaths.Peer("pdA", List.of())));

    await(
        () -> {
          try {
            return direct(a, b) && direct(b, a);
          } catch (Exception e) {
            return false;
          }
        },
        10,
        "direct paths both ways");
    PeerPaths.PingResult ping = a.discovery().ping(b.key()).get(5, TimeUnit.SECONDS);
    assertEquals(
        b.address().getAddress().getHostAddress() + ":" + b.address().getPort(), ping.path());
    assertTrue(ping.rttNanos() > 0);
    assertTrue(
        UapiProtocol.get(a.device()).contains("endpoint=127.0.0.1:" + b.device().listenPort()));

    // B stops answering directly while A sends it data: A falls back to the relay within the
    // active timeout (a quiet peer's path would be kept longer: PeerPathTest).
    b.device().setDatagramTap(null);
    long lost = System.nanoTime();
    await(
        () -> {
          try {
            a.tunnel().inject(udpTo100_64_0_2());
            return !direct(a, b);
          } catch (Exception e) {
            return false;
          }
        },
        15,
        "fallback to the relay");
    long fallbackMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - lost);
    System.out.println(
        "[trellis-metric] direct path lost -> relay after " + fallbackMillis + " ms");
    assertFalse(direct(a, b));
    PeerPaths.PingResult viaRelay = a.discovery().ping(b.key()).get(5, TimeUnit.SECONDS);
    assertEquals("relay", viaRelay.path());
  }

  /**
   * STUN from the WireGuard socket itself: the answer names that socket's port (what peers must aim
   * at).
   */
  @Test
  void reflexiveAddressIsAskedFromTheDeviceSocket() throws Exception {
    Side a = side("pdStun");
    StunResponder stun = StunResponder.start(new InetSocketAddress("127.0.0.1", 0));
    closeables.add(stun);
    InetSocketAddress reflexive =
        a.discovery()
            .reflexiveAddress(
                new InetSocketAddress("127.0.0.1", stun.port()), Duration.ofSeconds(5))
            .get(10, TimeUnit.SECONDS);
    assertEquals(a.device().listenPort(), reflexive.getPort());
    assertEquals("127.0.0.1", reflexive.getAddress().getHostAddress());
    // Nobody answering: the future fails after the timeout instead of hanging.
    ExecutionException e =
        Assertions.assertThrows(
            ExecutionException.class,
            () ->
                a.discovery()
                    .reflexiveAddress(
                        new InetSocketAddress("127.0.0.1", 9), Duration.ofMillis(1500))
                    .get(10, TimeUnit.SECONDS));
    assertTrue(e.getCause() instanceof TimeoutException, e.toString());
  }
}
