package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.dataplane.wireguard.MemoryTunnel;
import dev.trellis.dataplane.wireguard.Timing;
import dev.trellis.proto.control.ControlMessage.NodeInfo;
import dev.trellis.proto.wireguard.AllowedIps;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Map to device: a real {@link Device} over an in-memory tunnel. The "session kept" checks use a
 * second device on loopback, so a real WireGuard session must survive unrelated map changes.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class PeerReconcilerTest {
  private static final String LOOPBACK = "127.0.0.1";
  private final List<AutoCloseable> closeables = new ArrayList<>();

  @AfterEach
  void closeAll() throws Exception {
    for (int i = closeables.size() - 1; i >= 0; i--) {
      closeables.get(i).close();
    }
  }

  private record Node(Device device, MemoryTunnel tunnel, byte[] privateKey, String publicKey) {}

  private Node device(String name) throws IOException {
    MemoryTunnel tunnel = new MemoryTunnel(name);
    Device device = new Device(tunnel, Timing.DEFAULT);
    byte[] key = Curve25519.generatePrivateKey();
    device.setPrivateKey(key);
    device.start();
    closeables.add(device);
    return new Node(
        device, tunnel, key, Base64.getEncoder().encodeToString(Curve25519.publicKey(key)));
  }

  private static String randomKey() {
    return Base64.getEncoder()
        .encodeToString(Curve25519.publicKey(Curve25519.generatePrivateKey()));
  }

  private static NodeInfo node(long id, String name, String key, int host, List<String> endpoints) {
    return new NodeInfo(
        id,
        name,
        "robots",
        key,
        List.of("100.64.0." + host, "fd7a:115c:a1e0::" + host),
        endpoints,
        true,
        Instant.parse("2025-01-01T00:00:00Z"),
        Set.of(),
        null,
        false);
  }

  private static Map<String, Device.PeerStatus> byKey(Device device) {
    return device.peerStatuses().stream()
        .collect(Collectors.toMap(p -> Base64.getEncoder().encodeToString(p.publicKey()), p -> p));
  }

  private static Set<String> allowed(Device.PeerStatus p) {
    return p.allowedIps().stream().map(AllowedIps.Prefix::toString).collect(Collectors.toSet());
  }

  private static PeerReconciler reconciler(Device device) {
    return new PeerReconciler(device, a -> a instanceof Inet4Address);
  }

  @Test
  void fullMapConfiguresEveryPeer() throws IOException {
    Node a = device("a");
    PeerReconciler r = reconciler(a.device());
    String k1 = randomKey();
    String k2 = randomKey();
    r.replaceAll(
        List.of(
            node(2, "b", k1, 2, List.of("[2001:db8::7]:41641", "192.0.2.7:41641")),
            node(3, "c", k2, 3, List.of())));

    Map<String, Device.PeerStatus> peers = byKey(a.device());
    assertEquals(Set.of(k1, k2), peers.keySet());
    Device.PeerStatus b = peers.get(k1);
    assertEquals(Set.of("100.64.0.2/32", "fd7a:115c:a1e0::2/128"), allowed(b));
    assertEquals(
        new InetSocketAddress("192.0.2.7", 41641),
        b.endpoint(),
        "prefers an endpoint in a family we can use");
    assertEquals(AgentTiming.PERSISTENT_KEEPALIVE_SECONDS, b.persistentKeepaliveSeconds());
    assertEquals(null, peers.get(k2).endpoint(), "no endpoint known: waits for the peer to call");
  }

  @Test
  void deltasAddChangeAndRemoveOnlyWhatTheyName() throws IOException {
    Node a = device("a");
    PeerReconciler r = reconciler(a.device());
    String kb = randomKey();
    String kc = randomKey();
    String kd = randomKey();
    r.replaceAll(
        List.of(
            node(2, "b", kb, 2, List.of("192.0.2.2:1")),
            node(3, "c", kc, 3, List.of("192.0.2.3:1"))));

    r.apply(List.of(node(4, "d", kd, 4, List.of("192.0.2.4:1"))), List.of());
    assertEquals(Set.of(kb, kc, kd), byKey(a.device()).keySet());

    // c moves to another endpoint and gets another address
    NodeInfo cMoved =
        new NodeInfo(
            3,
            "c",
            "robots",
            kc,
            List.of("100.64.0.33"),
            List.of("192.0.2.33:2"),
            true,
            null,
            Set.of(),
            null,
            false);
    r.apply(List.of(cMoved), List.of());
    Device.PeerStatus c = byKey(a.device()).get(kc);
    assertEquals(new InetSocketAddress("192.0.2.33", 2), c.endpoint());
    assertEquals(Set.of("100.64.0.33/32"), allowed(c));

    r.apply(List.of(), List.of(2L));
    assertEquals(Set.of(kc, kd), byKey(a.device()).keySet());

    // d rotates its node key: old peer gone, new one configured
    String kd2 = randomKey();
    r.apply(List.of(node(4, "d", kd2, 4, List.of("192.0.2.4:1"))), List.of());
    assertEquals(Set.of(kc, kd2), byKey(a.device()).keySet());

    // a full map after a reconnect removes whatever it no longer lists
    r.replaceAll(List.of(node(4, "d", kd2, 4, List.of("192.0.2.4:1"))));
    assertEquals(Set.of(kd2), byKey(a.device()).keySet());
    assertEquals(1, r.nodes().size());

    r.clear();
    assertTrue(a.device().peerStatuses().isEmpty());
    assertTrue(r.nodes().isEmpty());
  }

  @Test
  void unchangedPeerKeepsItsSessionAcrossDeltasAndFullMaps() throws Exception {
    Node a = device("a");
    Node b = device("b");
    // b knows a directly, as if b's own agent had configured it
    byte[] aKey = Base64.getDecoder().decode(a.publicKey());
    b.device().addPeer(aKey);
    b.device().addPeerAllowedIp(aKey, AllowedIps.Prefix.parse("100.64.0.1/32"));

    PeerReconciler r = reconciler(a.device());
    NodeInfo bInfo =
        node(2, "b", b.publicKey(), 2, List.of(LOOPBACK + ":" + b.device().listenPort()));
    r.replaceAll(List.of(bInfo));
    sendAndExpect(a, b, ipv4("100.64.0.1", "100.64.0.2", 1));

    Device.PeerStatus before = byKey(a.device()).get(b.publicKey());
    assertNotEquals(0, before.lastHandshakeEpochNanos(), "the keepalive started a handshake");

    // unrelated changes: another peer joins, changes, leaves; a full map repeats b unchanged
    String kc = randomKey();
    r.apply(List.of(node(3, "c", kc, 3, List.of("192.0.2.3:1"))), List.of());
    r.apply(List.of(node(3, "c", kc, 33, List.of("192.0.2.3:2"))), List.of());
    r.replaceAll(List.of(bInfo, node(3, "c", kc, 33, List.of("192.0.2.3:2"))));
    r.apply(List.of(bInfo), List.of(3L));
    // b's map entry changes in ways that do not concern WireGuard (online, last seen)
    r.apply(
        List.of(
            new NodeInfo(
                2,
                "b",
                "robots",
                b.publicKey(),
                bInfo.addresses(),
                bInfo.endpoints(),
                false,
                Instant.now(),
                Set.of(),
                null,
                false)),
        List.of());

    sendAndExpect(a, b, ipv4("100.64.0.1", "100.64.0.2", 2));
    Device.PeerStatus after = byKey(a.device()).get(b.publicKey());
    assertEquals(
        before.lastHandshakeEpochNanos(),
        after.lastHandshakeEpochNanos(),
        "no new handshake: the session was kept");
    assertTrue(after.txBytes() > before.txBytes(), "counters continue rather than restart");
    assertEquals(Set.of(b.publicKey()), byKey(a.device()).keySet());
  }

  @Test
  void roamedEndpointSurvivesDeltasThatDoNotChangeTheMapEndpoint() throws Exception {
    Node a = device("a");
    PeerReconciler r = reconciler(a.device());
    String kb = randomKey();
    NodeInfo b = node(2, "b", kb, 2, List.of("192.0.2.2:1"));
    r.replaceAll(List.of(b));
    // the device learnt a newer endpoint from b's packets (simulated through the public API)
    a.device()
        .setPeerEndpoint(Base64.getDecoder().decode(kb), new InetSocketAddress("198.51.100.9", 7));
    r.apply(List.of(b), List.of());
    r.replaceAll(List.of(b));
    assertEquals(new InetSocketAddress("198.51.100.9", 7), byKey(a.device()).get(kb).endpoint());
  }

  @Test
  void parsesAndFormatsEndpoints() throws Exception {
    assertEquals(
        new InetSocketAddress(InetAddress.getByName("192.0.2.1"), 41641),
        Endpoints.parse("192.0.2.1:41641"));
    assertEquals(
        new InetSocketAddress(InetAddress.getByName("2001:db8::1"), 5),
        Endpoints.parse("[2001:db8::1]:5"));
    for (String bad :
        new String[] {
          "",
          "host:1",
          "192.0.2.1",
          "192.0.2.1:0",
          "192.0.2.1:70000",
          "2001:db8::1:5",
          "[2001:db8::1]"
        }) {
      assertEquals(null, Endpoints.parse(bad), bad);
    }
    assertEquals(
        "[2001:db8::1]:5", Endpoints.format(InetAddress.getByName("2001:db8:0:0:0:0:0:1"), 5));
    assertEquals("192.0.2.1:5", Endpoints.format(InetAddress.getByName("192.0.2.1"), 5));
  }

  private static void sendAndExpect(Node from, Node to, byte[] packet) throws InterruptedException {
    from.tunnel().inject(packet);
    byte[] got = to.tunnel().awaitWritten(10, TimeUnit.SECONDS);
    assertNotNull(got, "packet never arrived");
    assertEquals(packet.length, got.length);
  }

  private static byte[] ipv4(String src, String dst, int seq) throws IOException {
    byte[] p = new byte[20 + 8 + 32];
    p[0] = 0x45;
    p[2] = (byte) (p.length >>> 8);
    p[3] = (byte) p.length;
    p[8] = 64;
    p[9] = 17;
    System.arraycopy(InetAddress.getByName(src).getAddress(), 0, p, 12, 4);
    System.arraycopy(InetAddress.getByName(dst).getAddress(), 0, p, 16, 4);
    p[24] = 0;
    p[25] = 40;
    p[28] = (byte) seq;
    return p;
  }
}
