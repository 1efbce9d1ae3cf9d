package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.dataplane.filter.TestPackets;
import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.dataplane.wireguard.MemoryTunnel;
import dev.trellis.dataplane.wireguard.Timing;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.control.ControlMessage.NodeInfo;
import dev.trellis.proto.wireguard.AllowedIps;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.http.HttpClient;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent and ControlClient against {@link TinyControlServer}: real HTTP and WebSocket on
 * loopback.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AgentTest {
  @TempDir Path temp;

  private TinyControlServer server;
  private MemoryTunnel tunnel;
  private Device device;
  private Device peerDevice;
  private Agent agent;
  private final List<String> network = new CopyOnWriteArrayList<>();

  @AfterEach
  void stop() throws IOException {
    if (agent != null) {
      agent.close();
    }
    if (device != null) {
      device.close();
    }
    if (peerDevice != null) {
      peerDevice.close();
    }
    if (server != null) {
      server.close();
    }
  }

  private AgentState startAgent() throws IOException {
    server = new TinyControlServer();
    AgentState state = AgentState.open(temp.resolve("state"));
    tunnel = new MemoryTunnel("t0");
    device = new Device(tunnel, Timing.DEFAULT);
    device.setPrivateKey(state.nodePrivateKey());
    device.start();
    NetworkConfigurator recording =
        new NetworkConfigurator() {
          @Override
          public void apply(List<InetAddress> addresses, List<String> routes) {
            network.add(
                "apply " + addresses.stream().map(Endpoints::address).toList() + " " + routes);
          }

          @Override
          public void clear() {
            network.add("clear");
          }
        };
    HttpClient http = ControlClient.newHttpClient();
    agent =
        new Agent(
            state,
            device,
            "t0",
            recording,
            (url, key, listener) -> ControlClient.connect(http, url, key, listener),
            () -> List.of("192.0.2.1:" + device.listenPort()));
    agent.start();
    return state;
  }

  private static NodeInfo info(long id, String name, String key, int host) {
    return new NodeInfo(
        id,
        name,
        "fleet",
        key,
        List.of("100.64.0." + host, "fd7a:115c:a1e0::" + host),
        List.of("127.0.0.1:9"),
        true,
        Instant.EPOCH,
        Set.of(),
        null,
        false);
  }

  @Test
  void logsInAppliesTheMapAndResumesAfterTheServerDrops() throws Exception {
    AgentState state = startAgent();
    var pending = agent.up(server.url(), "tskey-1", "robot");
    TinyControlServer.Connection c = server.accept();
    ControlMessage.Login login = assertInstanceOf(ControlMessage.Login.class, c.receive());
    assertEquals("tskey-1", login.authKey());
    assertEquals("robot", login.hostname());
    assertEquals(state.nodePublicKeyBase64(), login.nodeKey());
    assertEquals(List.of("192.0.2.1:" + device.listenPort()), login.endpoints());

    NodeInfo self = info(1, "robot", state.nodePublicKeyBase64(), 1);
    String peerKey =
        Base64.getEncoder().encodeToString(Curve25519.publicKey(Curve25519.generatePrivateKey()));
    c.send(ControlMessage.LoginResult.success(self));
    // a full map in several WebSocket fragments
    c.send(
        new ControlMessage.FullMap(
            self,
            List.of(info(2, "arm", peerKey, 2)),
            new ControlMessage.NetworkInfo("100.64.0.0/10", "fd7a:115c:a1e0::/48")),
        3);

    AgentControl.Outcome outcome = pending.get(10, TimeUnit.SECONDS);
    assertTrue(outcome.ok(), String.valueOf(outcome.error()));
    assertEquals("robot", outcome.self().hostname());
    await(() -> device.peerStatuses().size() == 1);
    await(() -> !network.isEmpty());
    assertEquals(
        "apply [100.64.0.1, fd7a:115c:a1e0::1] [100.64.0.0/10, fd7a:115c:a1e0::/48]",
        network.getFirst());
    assertEquals(new AgentState.Saved(server.url(), "robot", true, true), state.saved());

    AgentStatus status = agent.status();
    assertEquals(AgentStatus.RUNNING, status.backendState());
    assertTrue(status.connected());
    assertEquals("arm", status.peers().getFirst().hostname());
    assertEquals("127.0.0.1:9", status.peers().getFirst().endpoint());

    // the server goes away: the peer stays configured, the agent comes back without a key
    c.kill();
    await(() -> !agent.status().connected());
    assertEquals(1, device.peerStatuses().size());
    TinyControlServer.Connection again = server.accept();
    ControlMessage.Login resume = assertInstanceOf(ControlMessage.Login.class, again.receive());
    assertNull(resume.authKey());
    again.send(ControlMessage.LoginResult.success(self));
    again.send(new ControlMessage.FullMap(self, List.of(info(2, "arm", peerKey, 2)), null));
    await(() -> agent.status().connected());
    again.send(new ControlMessage.MapDelta(null, List.of(), List.of(2L)));
    await(() -> device.peerStatuses().isEmpty());

    assertTrue(agent.down().get(5, TimeUnit.SECONDS).ok());
    assertEquals(AgentStatus.STOPPED, agent.status().backendState());
    assertTrue(network.contains("clear"));
  }

  /**
   * The server's PacketFilter is compiled into the device: a peer's packets that open something no
   * rule allows are dropped and counted in the status; the filter outlives the session, and a new
   * session's filter replaces it.
   */
  @Test
  void appliesThePacketFilterToWhatPeersSend() throws Exception {
    AgentState state = startAgent();
    // The peer: a second device in this JVM, at 100.64.0.2, sending to the agent's device.
    MemoryTunnel peerTunnel = new MemoryTunnel("peer");
    peerDevice = new Device(peerTunnel, Timing.DEFAULT);
    byte[] peerPrivate = Curve25519.generatePrivateKey();
    peerDevice.setPrivateKey(peerPrivate);
    peerDevice.start();
    byte[] nodeKey = Curve25519.publicKey(state.nodePrivateKey());
    peerDevice.addPeer(nodeKey);
    peerDevice.setPeerEndpoint(
        nodeKey, new InetSocketAddress(InetAddress.getLoopbackAddress(), device.listenPort()));
    peerDevice.addPeerAllowedIp(nodeKey, AllowedIps.Prefix.parse("100.64.0.1/32"));
    String peerKey = Base64.getEncoder().encodeToString(Curve25519.publicKey(peerPrivate));
    NodeInfo peer =
        new NodeInfo(
            2,
            "arm",
            "fleet",
            peerKey,
            List.of("100.64.0.2"),
            List.of("127.0.0.1:" + peerDevice.listenPort()),
            true,
            Instant.EPOCH,
            Set.of(),
            null,
            false);

    var pending = agent.up(server.url(), "tskey-1", "robot");
    TinyControlServer.Connection c = server.accept();
    assertInstanceOf(ControlMessage.Login.class, c.receive());
    NodeInfo self = info(1, "robot", state.nodePublicKeyBase64(), 1);
    c.send(ControlMessage.LoginResult.success(self));
    ControlMessage.FilterRule ssh =
        new ControlMessage.FilterRule(
            List.of("100.64.0.2"), List.of(new ControlMessage.PortRange(22, 22)), List.of());
    c.send(new ControlMessage.PacketFilter(List.of(ssh)));
    c.send(new ControlMessage.FullMap(self, List.of(peer), null));
    assertTrue(pending.get(10, TimeUnit.SECONDS).ok());
    AgentStatus.Filter filter = agent.status().filter();
    assertTrue(filter.policy());
    assertEquals(1, filter.rules());
    assertEquals(0, filter.dropped());

    byte[] syn22 = TestPackets.tcp4("100.64.0.2", "100.64.0.1", 40000, 22, TestPackets.SYN);
    byte[] syn80 = TestPackets.tcp4("100.64.0.2", "100.64.0.1", 40000, 80, TestPackets.SYN);
    peerTunnel.inject(syn80);
    await(() -> agent.status().filter().dropped() == 1);
    assertEquals(1L, agent.status().filter().droppedBy().get("no-rule"));
    peerTunnel.inject(syn22);
    assertArrayEquals(syn22, tunnel.awaitWritten(10, TimeUnit.SECONDS));
    assertNull(tunnel.pollWritten(), "the refused SYN never reached the tunnel");

    // The session drops: the policy stays.
    c.kill();
    TinyControlServer.Connection again = server.accept();
    assertInstanceOf(ControlMessage.Login.class, again.receive());
    assertTrue(agent.status().filter().policy());
    peerTunnel.inject(syn80);
    await(() -> agent.status().filter().dropped() == 2);
    // The new session has no policy: everything passes again.
    again.send(ControlMessage.LoginResult.success(self));
    again.send(ControlMessage.PacketFilter.allowAll());
    again.send(new ControlMessage.FullMap(self, List.of(peer), null));
    await(() -> !agent.status().filter().policy());
    peerTunnel.inject(syn80);
    assertArrayEquals(syn80, tunnel.awaitWritten(10, TimeUnit.SECONDS));
    assertEquals(2, agent.status().filter().dropped());
  }

  /**
   * The map names every replica; when the server it logged in at goes away, the agent logs in at
   * another.
   */
  @Test
  void failsOverToAnotherReplicaFromTheMap() throws Exception {
    AgentState state = startAgent();
    try (TinyControlServer other = new TinyControlServer()) {
      var pending = agent.up(server.url(), "tskey-1", "robot");
      TinyControlServer.Connection c = server.accept();
      assertInstanceOf(ControlMessage.Login.class, c.receive());
      NodeInfo self = info(1, "robot", state.nodePublicKeyBase64(), 1);
      c.send(ControlMessage.LoginResult.success(self));
      c.send(
          new ControlMessage.FullMap(
              self,
              List.of(),
              new ControlMessage.NetworkInfo(
                  "100.64.0.0/10",
                  "fd7a:115c:a1e0::/48",
                  List.of(),
                  List.of(server.url(), other.url()))));
      assertTrue(pending.get(10, TimeUnit.SECONDS).ok());
      await(() -> !network.isEmpty()); // the full map (with the replicas' URLs) has been applied

      // The first replica is gone for good: the agent resumes (no key) at the other one.
      server.close();
      server = null;
      c.kill();
      // The agent notices at once (a send the dead connection fails now ends the session too: the
      // JDK reports that only to the send) and tries the other URL after 1 s of backoff; 30 s
      // leaves room for a loaded CI machine.
      TinyControlServer.Connection failover = other.accept(30);
      ControlMessage.Login resume =
          assertInstanceOf(ControlMessage.Login.class, failover.receive());
      assertNull(resume.authKey());
      assertEquals(state.nodePublicKeyBase64(), resume.nodeKey());
      failover.send(ControlMessage.LoginResult.success(self));
      failover.send(new ControlMessage.FullMap(self, List.of(), null));
      await(() -> agent.status().connected());
      // A network update (e.g. a replica joined) replaces the list the agent fails over with.
      failover.send(
          new ControlMessage.NetworkUpdate(
              new ControlMessage.NetworkInfo(
                  "100.64.0.0/10", "fd7a:115c:a1e0::/48", List.of(), List.of(other.url()))));
      assertTrue(agent.down().get(5, TimeUnit.SECONDS).ok());
    }
  }

  /**
   * A replica that cannot complete a login yet (the lost replica's shards are still moving) answers
   * UNAVAILABLE: that is no refusal, so the agent keeps its registration and tunnels and tries
   * again.
   */
  @Test
  void aLoginTheServerCouldNotCompleteIsRetriedNotDropped() throws Exception {
    AgentState state = startAgent();
    var pending = agent.up(server.url(), "tskey-1", "robot");
    TinyControlServer.Connection c = server.accept();
    assertInstanceOf(ControlMessage.Login.class, c.receive());
    NodeInfo self = info(1, "robot", state.nodePublicKeyBase64(), 1);
    String peerKey =
        Base64.getEncoder().encodeToString(Curve25519.publicKey(Curve25519.generatePrivateKey()));
    c.send(ControlMessage.LoginResult.success(self));
    c.send(
        new ControlMessage.FullMap(
            self,
            List.of(info(2, "arm", peerKey, 2)),
            new ControlMessage.NetworkInfo("100.64.0.0/10", "fd7a:115c:a1e0::/48")));
    assertTrue(pending.get(10, TimeUnit.SECONDS).ok());
    await(() -> device.peerStatuses().size() == 1);

    c.kill();
    // Tried again, with the registration still in place.
    var again =
        answerUnavailableThenAccept("the server could not complete the login: ask timed out");
    ControlMessage.Login retry = again.login();
    assertNull(retry.authKey());
    assertTrue(state.saved().loggedIn());
    assertEquals(
        1, device.peerStatuses().size(), "the tunnel to the peer stays while the server is busy");
    assertEquals("robot", agent.status().self().hostname());
    again.connection().send(ControlMessage.LoginResult.success(self));
    again
        .connection()
        .send(new ControlMessage.FullMap(self, List.of(info(2, "arm", peerKey, 2)), null));
    await(() -> agent.status().connected());
    assertTrue(agent.down().get(5, TimeUnit.SECONDS).ok());
  }

  /**
   * A first `up` that the server cannot complete yet (a building was just lost) waits: it hears
   * why, the same login with the same key is tried again, and the `up` returns once it succeeds.
   */
  @Test
  void anUpTheServerCannotCompleteYetWaitsAndSaysWhy() throws Exception {
    AgentState state = startAgent();
    List<String> progress = new CopyOnWriteArrayList<>();
    var pending = agent.up(server.url(), "tskey-1", "robot", progress::add);
    var again = answerUnavailableThenAccept("the server could not complete the login right now");
    assertEquals("tskey-1", again.login().authKey(), "the retried login carries the key");
    assertFalse(pending.isDone(), "the up is still waiting");
    assertEquals(1, progress.size(), progress.toString());
    assertTrue(
        progress.getFirst().contains("could not complete the login right now"),
        progress.toString());
    NodeInfo self = info(1, "robot", state.nodePublicKeyBase64(), 1);
    again.connection().send(ControlMessage.LoginResult.success(self));
    again.connection().send(new ControlMessage.FullMap(self, List.of(), null));
    AgentControl.Outcome outcome = pending.get(10, TimeUnit.SECONDS);
    assertTrue(outcome.ok(), String.valueOf(outcome.error()));
    assertTrue(state.saved().loggedIn());
  }

  private record Retried(TinyControlServer.Connection connection, ControlMessage.Login login) {}

  /** The next login is answered UNAVAILABLE; returns the login the agent sends after that. */
  private Retried answerUnavailableThenAccept(String why) throws Exception {
    TinyControlServer.Connection busy = server.accept();
    assertInstanceOf(ControlMessage.Login.class, busy.receive());
    busy.send(ControlMessage.LoginResult.failure("UNAVAILABLE", why));
    TinyControlServer.Connection again = server.accept();
    return new Retried(again, assertInstanceOf(ControlMessage.Login.class, again.receive()));
  }

  @Test
  void refusedKeyIsReportedAndNothingIsSaved() throws Exception {
    AgentState state = startAgent();
    var pending = agent.up(server.url(), "bad", "robot");
    TinyControlServer.Connection c = server.accept();
    c.receive();
    c.send(ControlMessage.LoginResult.failure("EXPIRED", "auth key expired"));
    AgentControl.Outcome outcome = pending.get(10, TimeUnit.SECONDS);
    assertFalse(outcome.ok());
    assertEquals(
        "login refused by " + server.url() + ": auth key expired (EXPIRED)", outcome.error());
    assertFalse(state.saved().loggedIn());
    assertEquals(AgentStatus.NEEDS_LOGIN, agent.status().backendState());
  }

  @Test
  void unreachableServerIsNamed() throws Exception {
    startAgent();
    String nowhere = "http://127.0.0.1:1";
    AgentControl.Outcome outcome = agent.up(nowhere, "k", "robot").get(15, TimeUnit.SECONDS);
    assertFalse(outcome.ok());
    assertTrue(
        outcome.error().startsWith("cannot reach login server " + nowhere + ":"), outcome.error());
  }

  @Test
  void wrongUrlIsNotALoginServer() throws Exception {
    startAgent();
    AgentControl.Outcome outcome =
        agent.up(server.url() + "/elsewhere", "k", "robot").get(15, TimeUnit.SECONDS);
    assertFalse(outcome.ok());
    assertTrue(outcome.error().contains("is not a Trellis login server"), outcome.error());
  }

  private static void await(BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("condition not met within 15 s");
      }
      Thread.sleep(20);
    }
  }
}
