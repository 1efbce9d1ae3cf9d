package dev.trellis.control.relay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.control.Result;
import dev.trellis.control.admin.Admin;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.server.ServerSettings;
import dev.trellis.control.server.TrellisServer;
import dev.trellis.control.user.User;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.dataplane.agent.ControlClient;
import dev.trellis.dataplane.metrics.MetricsEndpoint;
import dev.trellis.dataplane.relay.RelayClient;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.relay.RelayFrame;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.InputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The relay end to end: a real server on port 0, nodes registered over the control channel,
 * RelayClients.
 */
@Timeout(90)
class RelayServerTest {
  private static final Duration WAIT = Duration.ofSeconds(15);

  @TempDir Path dataDir;
  private TrellisServer server;
  private HttpClient http;
  private String authKey;
  private final List<AutoCloseable> closeables = new ArrayList<>();
  private RelayClient.Transport transport = RelayClient.Transport.AUTO;

  @BeforeEach
  void start() throws Exception {
    server = TrellisServer.start(ServerSettings.load(null, dataDir, "127.0.0.1:0"));
    http = ControlClient.newHttpClient();
    Result<User> created =
        ask(server.services().users(), r -> new UserRegistry.CreateUser("lab", r));
    assertTrue(created.isOk());
    Result<AuthKeyRegistry.CreatedAuthKey> key =
        ask(
            server.services().authKeys(),
            r -> new AuthKeyRegistry.CreateAuthKey("lab", true, false, null, Set.of(), r));
    authKey = key.orElseThrow().secret();
  }

  @AfterEach
  void stop() {
    for (AutoCloseable c : closeables) {
      try {
        c.close();
      } catch (Exception ignored) {
        // best effort
      }
    }
    if (server != null) {
      server.close();
    }
  }

  private <C, R> R ask(ActorRef<C> target, Function<ActorRef<R>, C> message) throws Exception {
    CompletionStage<R> stage =
        AskPattern.ask(target, message::apply, WAIT, server.system().scheduler());
    return stage.toCompletableFuture().get(WAIT.toSeconds(), TimeUnit.SECONDS);
  }

  private RelayRegistry.Stats stats() {
    return server.relay().registry().stats();
  }

  /** A node registered through the control channel; its node key is what the relay knows it by. */
  final class Node implements ControlClient.Listener {
    final byte[] nodePrivate = Curve25519.generatePrivateKey();
    final byte[] nodeKey = Curve25519.publicKey(nodePrivate);
    final BlockingQueue<ControlMessage> received = new LinkedBlockingQueue<>();
    long id;

    Node register(String hostname) throws Exception {
      ControlClient client =
          ControlClient.connect(
                  http, URI.create(server.url()), Curve25519.generatePrivateKey(), this)
              .get(WAIT.toSeconds(), TimeUnit.SECONDS);
      closeables.add(client);
      client.send(
          new ControlMessage.Login(
              Base64.getEncoder().encodeToString(nodeKey), authKey, hostname, "linux", List.of()));
      ControlMessage.LoginResult result =
          (ControlMessage.LoginResult) await(m -> m instanceof ControlMessage.LoginResult);
      assertTrue(result.ok(), result.error());
      id = result.self().id();
      await(m -> m instanceof ControlMessage.FullMap);
      return this;
    }

    private ControlMessage await(Predicate<ControlMessage> match) throws InterruptedException {
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (System.nanoTime() < deadline) {
        ControlMessage m = received.poll(100, TimeUnit.MILLISECONDS);
        if (m != null && match.test(m)) {
          return m;
        }
      }
      throw new AssertionError("no matching control message");
    }

    @Override
    public void onMessage(ControlMessage message) {
      received.add(message);
    }

    @Override
    public void onClosed(String reason) {}

    Relay relay() throws Exception {
      return RelayServerTest.this.relay(nodePrivate);
    }
  }

  record Packet(byte[] src, byte[] data) {}

  /** A RelayClient and everything it heard. */
  final class Relay implements RelayClient.Listener {
    final BlockingQueue<Packet> packets = new LinkedBlockingQueue<>();
    final BlockingQueue<RelayFrame.PeerGone> gone = new LinkedBlockingQueue<>();
    final BlockingQueue<RelayFrame.Restarting> restarting = new LinkedBlockingQueue<>();
    final CompletableFuture<String> closed = new CompletableFuture<>();
    final AtomicLong count = new AtomicLong();
    volatile boolean keep = true;
    volatile CountDownLatch block;
    RelayClient client;

    @Override
    public void onPacket(byte[] srcKey, byte[] packet, int len) {
      count.incrementAndGet();
      if (keep) {
        packets.add(new Packet(srcKey.clone(), Arrays.copyOf(packet, len)));
      }
      CountDownLatch b = block;
      if (b != null) {
        try {
          b.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    }

    @Override
    public void onPeerGone(byte[] key, byte reason) {
      gone.add(new RelayFrame.PeerGone(key, reason));
    }

    @Override
    public void onRestarting(long reconnectInMillis, long tryForMillis) {
      restarting.add(new RelayFrame.Restarting(reconnectInMillis, tryForMillis));
    }

    @Override
    public void onClosed(String reason) {
      closed.complete(reason);
    }

    Packet next() throws InterruptedException {
      Packet p = packets.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
      assertNotNull(p, "no packet within " + WAIT);
      return p;
    }
  }

  private Relay relay(byte[] nodePrivate) throws Exception {
    Relay r = new Relay();
    byte[] serverKey = Base64.getDecoder().decode(server.publicKeyBase64());
    r.client =
        RelayClient.connect(http, URI.create(server.url()), nodePrivate, serverKey, r, transport)
            .get(WAIT.toSeconds(), TimeUnit.SECONDS);
    closeables.add(r.client);
    return r;
  }

  private static byte[] randomPacket(Random random, int size) {
    byte[] p = new byte[size];
    random.nextBytes(p);
    return p;
  }

  @ParameterizedTest
  @EnumSource(
      value = RelayClient.Transport.class,
      names = {"RAW", "WEBSOCKET"})
  void packetsFlowBothWaysByteIdentical(RelayClient.Transport over) throws Exception {
    transport = over;
    Node a = new Node().register("a");
    Node b = new Node().register("b");
    Relay ra = a.relay();
    Relay rb = b.relay();
    assertEquals(over == RelayClient.Transport.RAW ? "raw" : "websocket", ra.client.transport());
    assertArrayEquals(Base64.getDecoder().decode(server.publicKeyBase64()), ra.client.relayKey());
    Random random = new Random(1);
    int[] sizes = {1, 32, 148, 1400, 1420, 9000, 65_535};
    List<byte[]> toB = new ArrayList<>();
    List<byte[]> toA = new ArrayList<>();
    for (int round = 0; round < 20; round++) {
      for (int size : sizes) {
        byte[] p = randomPacket(random, size);
        toB.add(p);
        // Offset and length inside a larger buffer, as a WireGuard device would pass them.
        byte[] buffer = new byte[size + 20];
        System.arraycopy(p, 0, buffer, 7, size);
        assertTrue(ra.client.send(b.nodeKey, buffer, 7, size));
        byte[] q = randomPacket(random, size);
        toA.add(q);
        assertTrue(rb.client.send(a.nodeKey, q, 0, size));
      }
    }
    for (byte[] expected : toB) {
      Packet got = rb.next();
      assertArrayEquals(a.nodeKey, got.src());
      assertArrayEquals(expected, got.data());
    }
    for (byte[] expected : toA) {
      Packet got = ra.next();
      assertArrayEquals(b.nodeKey, got.src());
      assertArrayEquals(expected, got.data());
    }
    RelayRegistry.Stats stats = stats();
    assertEquals(2, stats.connected());
    assertEquals(toA.size() + toB.size(), stats.packetsForwarded());
    assertEquals(0, stats.dropped());
    assertEquals("default", stats.region());

    // Ping is answered and does not disturb the stream.
    ra.client.ping();
    assertTrue(ra.client.send(b.nodeKey, new byte[] {42}, 0, 1));
    assertArrayEquals(new byte[] {42}, rb.next().data());

    // A newer connection with the same key replaces the older, which is closed.
    Relay ra2 = a.relay();
    String reason = ra.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS);
    assertTrue(reason.contains("replaced"), reason);
    assertTrue(rb.client.send(a.nodeKey, new byte[] {7, 7}, 0, 2));
    assertArrayEquals(new byte[] {7, 7}, ra2.next().data());
    assertEquals(1, stats().replaced());

    // When a node leaves, the peers that sent to it hear PeerGone(disconnected).
    ra2.client.close();
    RelayFrame.PeerGone gone = rb.gone.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
    assertNotNull(gone);
    assertArrayEquals(a.nodeKey, gone.key());
    assertEquals(RelayFrame.GONE_DISCONNECTED, gone.reason());
  }

  /** The server's /metrics, fetched over HTTP from its metrics listener. */
  private String scrape() throws Exception {
    assertTrue(server.metricsPort() > 0, "the test server serves metrics on a port of its own");
    var response =
        http.send(
            java.net.http.HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + server.metricsPort() + "/metrics"))
                .build(),
            java.net.http.HttpResponse.BodyHandlers.ofString());
    assertEquals(200, response.statusCode());
    return response.body();
  }

  /** The value of the sample {@code series} (name and labels as exposed), or NaN if absent. */
  static double sample(String exposition, String series) {
    return MetricsEndpoint.sample(exposition, series).orElse(Double.NaN);
  }

  @Test
  void metricsCountWhatTheRelayAndTheControlPlaneDid() throws Exception {
    String before = scrape();
    assertEquals(0, sample(before, "trellis_relay_forwarded_packets_total"));
    assertEquals(0, sample(before, "trellis_relay_connections"));
    assertTrue(sample(before, "jvm_memory_used_bytes{area=\"heap\"}") > 0, "JVM metrics");
    assertEquals(1, sample(before, "trellis_cluster_members{role=\"relay\",status=\"up\"}"));
    assertEquals(1, sample(before, "trellis_cluster_members{role=\"control\",status=\"up\"}"));

    Node a = new Node().register("a");
    Node b = new Node().register("b");
    Relay ra = a.relay();
    Relay rb = b.relay();
    int packets = 37;
    long bytes = 0;
    for (int i = 0; i < packets; i++) {
      int size = 100 + 31 * i;
      bytes += size;
      assertTrue(ra.client.send(b.nodeKey, new byte[size], 0, size));
    }
    for (int i = 0; i < packets; i++) {
      rb.next();
    }
    byte[] nobody = Curve25519.publicKey(Curve25519.generatePrivateKey());
    for (int i = 0; i < 3; i++) {
      ra.client.send(nobody, new byte[] {1}, 0, 1);
    }
    String after =
        awaitScrape(
            m ->
                sample(m, "trellis_relay_dropped_packets_total{reason=\"unknown_destination\"}")
                    == 3);
    assertEquals(packets, sample(after, "trellis_relay_forwarded_packets_total"));
    assertEquals(bytes, sample(after, "trellis_relay_forwarded_bytes_total"));
    assertEquals(2, sample(after, "trellis_relay_connections"));
    assertEquals(2, sample(after, "trellis_relay_authentications_total{result=\"accepted\"}"));
    assertEquals(0, sample(after, "trellis_relay_dropped_packets_total{reason=\"queue_full\"}"));
    assertEquals(2, sample(after, "trellis_control_logins_total{result=\"registered\"}"));
    assertEquals(2, sample(after, "trellis_control_sessions"));
    // The map counts on its own actor, which may not have handled both logins yet.
    String mapped =
        awaitScrape(
            m ->
                sample(m, "trellis_nodes{state=\"online\"}") == 2
                    && sample(m, "trellis_map_full_maps_sent_total") >= 2);

    // A third node joins while a and b are connected: its arrival reaches both as deltas (a and b
    // may have met in each other's full maps), and the time that took is recorded.
    double deltasBefore = sample(mapped, "trellis_map_deltas_sent_total");
    new Node().register("c");
    String joined =
        awaitScrape(
            m ->
                sample(m, "trellis_map_deltas_sent_total") >= deltasBefore + 2
                    && sample(m, "trellis_map_change_delivery_seconds_count") >= 1);
    assertEquals(3, sample(joined, "trellis_control_sessions"));
    assertEquals(3, sample(joined, "trellis_nodes{state=\"online\"}"));
  }

  /** Scrapes until {@code done} holds of the exposition (the relay counts as it forwards). */
  private String awaitScrape(Predicate<String> done) throws Exception {
    long deadline = System.nanoTime() + WAIT.toNanos();
    String last = scrape();
    while (!done.test(last)) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("metrics never matched; last scrape:\n" + last);
      }
      Thread.sleep(50);
      last = scrape();
    }
    return last;
  }

  @Test
  void unregisteredKeyIsRefusedAndNeverReceives() throws Exception {
    Node a = new Node().register("a");
    Relay ra = a.relay();
    byte[] strangerPrivate = Curve25519.generatePrivateKey();
    byte[] strangerKey = Curve25519.publicKey(strangerPrivate);
    Relay stranger = new Relay();
    ExecutionException e =
        assertThrows(
            ExecutionException.class,
            () ->
                RelayClient.connect(http, URI.create(server.url()), strangerPrivate, null, stranger)
                    .get(WAIT.toSeconds(), TimeUnit.SECONDS));
    assertInstanceOf(RelayClient.RelayException.class, e.getCause());
    assertTrue(e.getCause().getMessage().contains("not registered"), e.getCause().getMessage());
    assertFalse(server.relay().registry().isConnected(strangerKey));

    // Sending to it: nothing is relayed, the sender hears PeerGone(not connected) once per second
    // at most.
    for (int i = 0; i < 50; i++) {
      ra.client.send(strangerKey, new byte[] {1, 2, 3}, 0, 3);
    }
    RelayFrame.PeerGone gone = ra.gone.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
    assertNotNull(gone);
    assertArrayEquals(strangerKey, gone.key());
    assertEquals(RelayFrame.GONE_NOT_CONNECTED, gone.reason());
    Thread.sleep(300);
    assertTrue(ra.gone.isEmpty(), "PeerGone is rate-limited per destination");
    assertEquals(0, stranger.count.get());
    assertEquals(50, stats().unknownDestination());
    assertTrue(stats().refused() >= 1);
  }

  /** A raw WebSocket speaking the relay protocol by hand. */
  static final class Raw implements WebSocket.Listener {
    final BlockingQueue<byte[]> frames = new LinkedBlockingQueue<>();
    final CompletableFuture<Integer> closed = new CompletableFuture<>();
    private final ByteArrayOutputStream partial = new ByteArrayOutputStream();
    WebSocket ws;

    @Override
    public void onOpen(WebSocket webSocket) {
      webSocket.request(Long.MAX_VALUE);
    }

    @Override
    public CompletionStage<?> onBinary(WebSocket webSocket, ByteBuffer data, boolean last) {
      byte[] chunk = new byte[data.remaining()];
      data.get(chunk);
      partial.writeBytes(chunk);
      if (last) {
        frames.add(partial.toByteArray());
        partial.reset();
      }
      return null;
    }

    @Override
    public CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
      closed.complete(statusCode);
      return null;
    }

    @Override
    public void onError(WebSocket webSocket, Throwable error) {
      closed.complete(-1);
    }

    RelayFrame.Frame next() throws Exception {
      byte[] f = frames.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
      assertNotNull(f, "no frame from the relay");
      return RelayFrame.parse(f);
    }

    void send(byte[] frame) throws Exception {
      ws.sendBinary(ByteBuffer.wrap(frame), true).get(WAIT.toSeconds(), TimeUnit.SECONDS);
    }
  }

  private Raw raw() throws Exception {
    Raw raw = new Raw();
    raw.ws =
        http.newWebSocketBuilder()
            .buildAsync(RelayClient.relayUri(URI.create(server.url())), raw)
            .get(WAIT.toSeconds(), TimeUnit.SECONDS);
    return raw;
  }

  @Test
  void wrongProofIsRefused() throws Exception {
    Node a = new Node().register("a");
    Node b = new Node().register("b");
    Relay rb = b.relay();

    // Claiming a's key with a proof made from another private key.
    Raw forger = raw();
    RelayFrame.ServerHello hello = assertInstanceOf(RelayFrame.ServerHello.class, forger.next());
    RelayFrame.ClientAuth own = RelayFrame.authenticate(Curve25519.generatePrivateKey(), hello);
    forger.send(RelayFrame.encode(new RelayFrame.ClientAuth(a.nodeKey, own.proof())));
    RelayFrame.Error error = assertInstanceOf(RelayFrame.Error.class, forger.next());
    assertTrue(error.reason().contains("authentication failed"), error.reason());
    assertNotNull(forger.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS));
    assertFalse(server.relay().registry().isConnected(a.nodeKey));

    // A proof replayed against a fresh challenge fails too.
    Raw replayer = raw();
    replayer.next();
    replayer.send(RelayFrame.encode(RelayFrame.authenticate(a.nodePrivate, hello)));
    assertInstanceOf(RelayFrame.Error.class, replayer.next());

    // Packets before authenticating are not relayed: the connection is refused.
    Raw eager = raw();
    eager.next();
    eager.send(RelayFrame.packetFrame(RelayFrame.SEND_PACKET, b.nodeKey, new byte[] {1}, 0, 1));
    RelayFrame.Error notAuth = assertInstanceOf(RelayFrame.Error.class, eager.next());
    assertTrue(notAuth.reason().contains("expected ClientAuth"), notAuth.reason());
    Thread.sleep(200);
    assertEquals(0, rb.count.get());
    assertEquals(0, stats().packetsForwarded());
  }

  @Test
  void deletedNodeIsDisconnected() throws Exception {
    Node a = new Node().register("a");
    Node b = new Node().register("b");
    Relay ra = a.relay();
    Relay rb = b.relay();
    assertTrue(ra.client.send(b.nodeKey, new byte[] {1}, 0, 1));
    rb.next();
    Result<NodeRecord> deleted = ask(server.services().admin(), r -> new Admin.DeleteNode(b.id, r));
    assertTrue(deleted.isOk());
    String reason = rb.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS);
    assertTrue(reason.contains("deleted"), reason);
    assertFalse(server.relay().registry().isConnected(b.nodeKey));
    // a sent to b, so a is told b is gone; later packets are not relayed.
    RelayFrame.PeerGone gone = ra.gone.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
    assertNotNull(gone);
    assertArrayEquals(b.nodeKey, gone.key());
    // b's key can no longer connect.
    ExecutionException e = assertThrows(ExecutionException.class, () -> relay(b.nodePrivate));
    assertTrue(e.getCause().getMessage().contains("not registered"), e.getCause().getMessage());
    assertTrue(ra.client.isOpen());
  }

  @ParameterizedTest
  @EnumSource(
      value = RelayClient.Transport.class,
      names = {"RAW", "WEBSOCKET"})
  void malformedOrOversizedFramesCloseOnlyThatConnection(RelayClient.Transport over)
      throws Exception {
    transport = over;
    Node a = new Node().register("a");
    Node b = new Node().register("b");
    Node c = new Node().register("c");
    Relay ra = a.relay();
    Relay rb = b.relay();
    Relay rc = c.relay();

    ra.client.sendRaw(new byte[] {0x7f, 1, 2, 3}); // unknown type
    String reason = ra.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS);
    assertNotNull(reason);
    assertFalse(server.relay().registry().isConnected(a.nodeKey));

    byte[] oversized = new byte[RelayFrame.MAX_FRAME + 100];
    oversized[0] = RelayFrame.SEND_PACKET;
    System.arraycopy(c.nodeKey, 0, oversized, 1, 32);
    rb.client.sendRaw(oversized);
    assertNotNull(rb.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS));
    assertFalse(server.relay().registry().isConnected(b.nodeKey));

    // A frame the relay itself sends (RecvPacket) is not for nodes to send; a truncated Ping
    // neither.
    Relay ra2 = a.relay();
    ra2.client.sendRaw(new byte[] {RelayFrame.PING, 1, 2});
    assertNotNull(ra2.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS));
    Relay rb2 = b.relay();
    rb2.client.sendRaw(
        RelayFrame.packetFrame(RelayFrame.RECV_PACKET, c.nodeKey, new byte[] {1}, 0, 1));
    assertNotNull(rb2.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS));
    // SendSame names no destination: before any SendPacket there is none to repeat.
    Relay ra4 = a.relay();
    ra4.client.sendRaw(RelayFrame.sameFrame(RelayFrame.SEND_SAME, new byte[] {1, 2}, 0, 2));
    assertNotNull(ra4.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS));
    // ForwardPacket is for the relays of a cluster, not for nodes.
    Relay ra5 = a.relay();
    ra5.client.sendRaw(RelayFrame.forwardFrame(a.nodeKey, c.nodeKey, new byte[] {1}, 0, 1));
    assertNotNull(ra5.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS));
    assertEquals(0, rc.count.get(), "nothing from the misbehaving connections was relayed");
    assertTrue(stats().malformed() >= 6, stats().toString());

    // c was never disturbed, and a fresh connection of a works.
    Relay ra3 = a.relay();
    assertTrue(rc.client.send(a.nodeKey, new byte[] {5}, 0, 1));
    assertArrayEquals(new byte[] {5}, ra3.next().data());
    assertTrue(ra3.client.send(c.nodeKey, new byte[] {6}, 0, 1));
    assertArrayEquals(new byte[] {6}, rc.next().data());
    assertTrue(rc.client.isOpen());
  }

  /** {@code GET /relay/load}: what nodes choosing among a region's relays read. */
  @Test
  void loadSaysHowManyNodesTheRelayHolds() throws Exception {
    Supplier<JsonNode> load =
        () -> {
          try {
            var response =
                http.send(
                    HttpRequest.newBuilder(URI.create(server.url() + "/relay/load")).GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, response.statusCode());
            return ControlJson.MAPPER.readTree(response.body());
          } catch (Exception e) {
            throw new AssertionError(e);
          }
        };
    assertEquals(0, load.get().get("connectedNodes").asInt());
    assertEquals(server.relay().settings().region(), load.get().get("region").asText());
    Node a = new Node().register("a");
    a.relay();
    assertEquals(1, load.get().get("connectedNodes").asInt());
  }

  /**
   * The raw upgrade by hand: 101 with the protocol named, then a bad length prefix closes that
   * connection only.
   */
  @Test
  void rawUpgradeAnswers101AndABadLengthClosesThatConnection() throws Exception {
    Node a = new Node().register("a");
    Relay ra = a.relay();
    URI u = URI.create(server.url());
    for (int badLength : new int[] {0, RelayFrame.MAX_FRAME + 1, -1}) {
      try (Socket s = new Socket(u.getHost(), u.getPort())) {
        s.setSoTimeout((int) WAIT.toMillis());
        s.getOutputStream()
            .write(
                ("GET /relay HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: trellis-relay\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
        InputStream in = s.getInputStream();
        StringBuilder head = new StringBuilder();
        while (!head.toString().endsWith("\r\n\r\n")) {
          int c = in.read();
          assertTrue(c >= 0, "closed during the upgrade: " + head);
          head.append((char) c);
        }
        assertTrue(head.toString().startsWith("HTTP/1.1 101"), head.toString());
        assertTrue(
            head.toString().toLowerCase(Locale.ROOT).contains("upgrade: trellis-relay"),
            head.toString());
        DataInputStream data = new DataInputStream(in);
        int helloLength = data.readInt();
        assertEquals(1 + RelayFrame.KEY_LENGTH + RelayFrame.NONCE_LENGTH, helloLength);
        assertEquals(RelayFrame.SERVER_HELLO, data.readByte());
        data.readFully(new byte[helloLength - 1]);
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        out.writeInt(badLength);
        out.write(new byte[64]);
        out.flush();
        byte[] rest = new byte[4096];
        int n;
        do {
          n = in.read(rest);
        } while (n > 0);
        assertEquals(-1, n, "the relay closes the connection");
      }
    }
    assertTrue(ra.client.isOpen(), "other connections are untouched");
    assertTrue(ra.client.pingRttNanos().get(WAIT.toSeconds(), TimeUnit.SECONDS) > 0);
  }

  /** A clean shutdown tells every connected node when to come back. */
  @Test
  void shutdownAnnouncesARestartToConnectedNodes() throws Exception {
    Node a = new Node().register("a");
    Relay ra = a.relay();
    server.close();
    RelayFrame.Restarting notice = ra.restarting.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
    assertNotNull(notice, "no Restarting notice before the close");
    assertEquals(1000, notice.reconnectInMillis());
    assertEquals(60_000, notice.tryForMillis());
    assertNotNull(ra.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS));
    server = null;
  }

  @Test
  void floodToSlowReaderDropsWithinABoundedQueue() throws Exception {
    Node a = new Node().register("a");
    Node b = new Node().register("b");
    Relay ra = a.relay();
    Relay rb = b.relay();
    rb.keep = false;
    CountDownLatch release = new CountDownLatch(1);
    rb.block = release; // b's reader stops at its first packet: its socket backs up
    byte[] packet = new byte[1400];
    long offered = 0;
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (stats().dropped() < 1000 && System.nanoTime() < deadline) {
      if (ra.client.send(b.nodeKey, packet, 0, packet.length)) {
        offered++;
      } else {
        Thread.onSpinWait();
      }
    }
    RelayRegistry.Stats stats = stats();
    System.out.printf(
        "flood: %d packets sent by a, relay dropped %d, queued for b %d (max-queue %d)%n",
        offered,
        stats.dropped(),
        server.relay().registry().queued(b.nodeKey),
        server.relay().settings().maxQueue());
    assertTrue(stats.dropped() > 0, stats.toString());
    assertTrue(server.relay().registry().queued(b.nodeKey) <= server.relay().settings().maxQueue());
    // Both ends stay connected and a still gets through to others once b reads again.
    release.countDown();
    rb.block = null;
    assertTrue(ra.client.isOpen());
    long settle = System.nanoTime() + WAIT.toNanos();
    long before = -1;
    while (System.nanoTime() < settle && before != rb.count.get()) {
      before = rb.count.get();
      Thread.sleep(300);
    }
    assertTrue(rb.count.get() < offered, "some were dropped: " + rb.count.get() + " of " + offered);
    rb.keep = true;
    assertTrue(ra.client.send(b.nodeKey, new byte[] {9}, 0, 1));
    Packet last;
    do {
      last = rb.next();
    } while (last.data().length != 1);
    assertArrayEquals(new byte[] {9}, last.data());
    assertTrue(rb.client.isOpen());
  }

  @Test
  void throughputOfOneStreamThroughTheRelay() throws Exception {
    Node a = new Node().register("a");
    Node b = new Node().register("b");
    Relay ra = a.relay();
    Relay rb = b.relay();
    rb.keep = false;
    byte[] packet = new byte[1400];
    new Random(3).nextBytes(packet);
    // Warm up, then measure ~3 s.
    long warm = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(1000);
    while (System.nanoTime() < warm) {
      if (!ra.client.send(b.nodeKey, packet, 0, packet.length)) {
        Thread.onSpinWait();
      }
    }
    Thread.sleep(200);
    long received0 = rb.count.get();
    long dropped0 = stats().dropped() + ra.client.dropped();
    long start = System.nanoTime();
    long end = start + TimeUnit.SECONDS.toNanos(3);
    long offered = 0;
    while (System.nanoTime() < end) {
      if (ra.client.send(b.nodeKey, packet, 0, packet.length)) {
        offered++;
      } else {
        Thread.onSpinWait();
      }
    }
    long received = rb.count.get() - received0;
    double seconds = (System.nanoTime() - start) / 1e9;
    System.out.printf(
        "relay throughput, 1400-byte packets, one client to another on loopback: %.0f packets/s, %.1f MB/s "
            + "(%d queued by the sender, %d received in %.2f s; drops since warm-up: %d)%n",
        received / seconds,
        received * 1400 / seconds / 1e6,
        offered,
        received,
        seconds,
        stats().dropped() + ra.client.dropped() - dropped0);
    assertTrue(received > 0);
    assertNull(rb.closed.getNow(null));
  }
}
