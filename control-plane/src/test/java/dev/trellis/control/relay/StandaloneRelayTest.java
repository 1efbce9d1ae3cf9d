package dev.trellis.control.relay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.trellis.control.Result;
import dev.trellis.control.admin.Admin;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.server.ServerKey;
import dev.trellis.control.server.ServerSettings;
import dev.trellis.control.server.TrellisServer;
import dev.trellis.control.user.User;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.dataplane.agent.ControlClient;
import dev.trellis.dataplane.relay.RelayClient;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.wireguard.Curve25519;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The relay map and a relay on its own ({@code trellis relay}) next to a real server: the map nodes
 * receive names both regions with their keys; the standalone relay admits only the keys the server
 * calls live (asked over the admin API), carries packets, and drops a node the admin deletes.
 */
@Timeout(90)
class StandaloneRelayTest {
  private static final Duration WAIT = Duration.ofSeconds(20);

  @TempDir Path serverDir;
  @TempDir Path relayDir;
  private TrellisServer server;
  private StandaloneRelay relay;
  private final HttpClient http = ControlClient.newHttpClient();
  private String authKey;
  private String apiKey;
  private String relayKey;
  private int relayPort;
  private final List<AutoCloseable> closeables = new ArrayList<>();

  @BeforeEach
  void start() throws Exception {
    // The relay's key and port are fixed before the server starts, so the server's config can list
    // it the way an
    // admin would (trellis.relay.others) and the relay can then start against the running server.
    relayKey =
        Base64.getEncoder().encodeToString(Curve25519.publicKey(ServerKey.loadOrCreate(relayDir)));
    try (ServerSocket free = new ServerSocket(0)) {
      relayPort = free.getLocalPort();
    }
    Path conf = serverDir.resolve("trellis.conf");
    Files.writeString(
        conf,
        "trellis.relay.others = [{ region = building-b, url = \"http://127.0.0.1:"
            + relayPort
            + "\", key = \""
            + relayKey
            + "\" }]\n");
    server =
        TrellisServer.start(ServerSettings.load(conf, serverDir.resolve("data"), "127.0.0.1:0"));
    Result<User> user = ask(server.services().users(), r -> new UserRegistry.CreateUser("lab", r));
    assertTrue(user.isOk());
    authKey =
        ask(
                server.services().authKeys(),
                (ActorRef<Result<AuthKeyRegistry.CreatedAuthKey>> r) ->
                    new AuthKeyRegistry.CreateAuthKey("lab", true, false, null, Set.of(), r))
            .orElseThrow()
            .secret();
    apiKey =
        ask(
                server.services().admin(),
                (ActorRef<Result<ApiKeyRegistry.CreatedApiKey>> r) ->
                    new Admin.CreateApiKey(null, r))
            .orElseThrow()
            .secret();
    relay =
        StandaloneRelay.start(
            new StandaloneRelay.Settings(
                "127.0.0.1",
                relayPort,
                relayDir,
                "building-b",
                URI.create(server.url()),
                apiKey,
                null,
                64,
                "127.0.0.1:0"));
    assertEquals(relayKey, relay.publicKeyBase64());
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
    if (relay != null) {
      relay.close();
    }
    if (server != null) {
      server.close();
    }
  }

  private String relayUrl() {
    return "http://127.0.0.1:" + relay.port();
  }

  private <C, R> R ask(ActorRef<C> target, Function<ActorRef<R>, C> message) throws Exception {
    CompletionStage<R> stage =
        AskPattern.ask(target, message::apply, WAIT, server.system().scheduler());
    return stage.toCompletableFuture().get(WAIT.toSeconds(), TimeUnit.SECONDS);
  }

  /** A registered node: its node key, id and the full map it got. */
  record Node(byte[] nodePrivate, byte[] nodeKey, long id, ControlMessage.FullMap map) {}

  private Node register(String hostname) throws Exception {
    byte[] nodePrivate = Curve25519.generatePrivateKey();
    byte[] nodeKey = Curve25519.publicKey(nodePrivate);
    BlockingQueue<ControlMessage> received = new LinkedBlockingQueue<>();
    ControlClient client =
        ControlClient.connect(
                http,
                URI.create(server.url()),
                Curve25519.generatePrivateKey(),
                new ControlClient.Listener() {
                  @Override
                  public void onMessage(ControlMessage message) {
                    received.add(message);
                  }

                  @Override
                  public void onClosed(String reason) {}
                })
            .get(WAIT.toSeconds(), TimeUnit.SECONDS);
    closeables.add(client);
    client.send(
        new ControlMessage.Login(
            Base64.getEncoder().encodeToString(nodeKey), authKey, hostname, "linux", List.of()));
    long id = -1;
    while (true) {
      ControlMessage m = received.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
      assertNotNull(m, "no full map");
      if (m instanceof ControlMessage.LoginResult r) {
        assertTrue(r.ok(), r.error());
        id = r.self().id();
      } else if (m instanceof ControlMessage.FullMap f) {
        return new Node(nodePrivate, nodeKey, id, f);
      }
    }
  }

  record Heard(BlockingQueue<byte[]> packets, CompletableFuture<String> closed) {}

  private RelayClient connect(Node node, Heard heard, byte[] expectedKey) throws Exception {
    RelayClient c =
        RelayClient.connect(
                http,
                URI.create(relayUrl()),
                node.nodePrivate(),
                expectedKey,
                new RelayClient.Listener() {
                  @Override
                  public void onPacket(byte[] srcKey, byte[] packet, int len) {
                    heard.packets().add(Arrays.copyOf(packet, len));
                  }

                  @Override
                  public void onClosed(String reason) {
                    heard.closed().complete(reason);
                  }
                })
            .get(WAIT.toSeconds(), TimeUnit.SECONDS);
    closeables.add(c);
    return c;
  }

  @Test
  void relayMapNamesBothRegionsAndTheStandaloneRelayAdmitsOnlyLiveNodes() throws Exception {
    Node a = register("a");
    Node b = register("b");
    List<ControlMessage.RelayInfo> relays = a.map().network().relays();
    assertEquals(2, relays.size(), relays.toString());
    // The server's own relay is part of the cluster's mesh; the standalone one is not (nodes reach
    // it directly).
    assertEquals(
        new ControlMessage.RelayInfo(
            "default", null, server.publicKeyBase64(), server.stunPort(), true),
        relays.get(0));
    assertEquals(
        new ControlMessage.RelayInfo("building-b", relayUrl(), relay.publicKeyBase64(), null),
        relays.get(1));

    byte[] relayKey = Base64.getDecoder().decode(relays.get(1).key());
    Heard heardA = new Heard(new LinkedBlockingQueue<>(), new CompletableFuture<>());
    Heard heardB = new Heard(new LinkedBlockingQueue<>(), new CompletableFuture<>());
    RelayClient ra = connect(a, heardA, relayKey);
    RelayClient rb = connect(b, heardB, relayKey);
    assertEquals("raw", ra.transport());
    assertTrue(ra.send(b.nodeKey(), new byte[] {1, 2, 3}, 0, 3));
    assertArrayEquals(
        new byte[] {1, 2, 3}, heardB.packets().poll(WAIT.toSeconds(), TimeUnit.SECONDS));
    assertTrue(rb.send(a.nodeKey(), new byte[] {4}, 0, 1));
    assertArrayEquals(new byte[] {4}, heardA.packets().poll(WAIT.toSeconds(), TimeUnit.SECONDS));
    assertEquals(2, relay.relay().registry().stats().connected());
    // Its metrics, on the listener --metrics-listen gave it.
    String metrics =
        http.send(
                java.net.http.HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + relay.metricsPort() + "/metrics"))
                    .build(),
                java.net.http.HttpResponse.BodyHandlers.ofString())
            .body();
    assertTrue(metrics.contains("trellis_relay_connections 2.0"), metrics);
    assertTrue(metrics.contains("trellis_relay_forwarded_packets_total 2.0"), metrics);

    // A key the server never registered is refused, with the reason.
    Node stranger = new Node(Curve25519.generatePrivateKey(), null, -1, null);
    ExecutionException refused =
        assertThrows(
            ExecutionException.class,
            () ->
                RelayClient.connect(
                        http,
                        URI.create(relayUrl()),
                        stranger.nodePrivate(),
                        relayKey,
                        new RelayClient.Listener() {
                          @Override
                          public void onPacket(byte[] srcKey, byte[] packet, int len) {}

                          @Override
                          public void onClosed(String reason) {}
                        })
                    .get(WAIT.toSeconds(), TimeUnit.SECONDS));
    assertTrue(
        refused.getCause().getMessage().contains("not registered"),
        refused.getCause().getMessage());

    // The admin deletes a: the standalone relay learns it at its next re-check and closes a's
    // connection.
    Result<?> deleted =
        ask(
            server.services().admin(),
            (ActorRef<Result<NodeRecord>> r) -> new Admin.DeleteNode(a.id(), r));
    assertTrue(deleted.isOk());
    String reason =
        heardA
            .closed()
            .get(ControlPlaneNodeKeys.RECHECK.toSeconds() + WAIT.toSeconds(), TimeUnit.SECONDS);
    assertNotNull(reason);
    assertTrue(rb.isOpen(), "b is still live and stays connected");
  }

  @Test
  void aWrongApiKeyMeansNoNodeIsAdmitted() throws Exception {
    Node a = register("a");
    relay.close();
    relay =
        StandaloneRelay.start(
            new StandaloneRelay.Settings(
                "127.0.0.1",
                relayPort,
                relayDir,
                "building-b",
                URI.create(server.url()),
                "not-an-api-key",
                null,
                64,
                null));
    ExecutionException refused =
        assertThrows(
            ExecutionException.class,
            () ->
                connect(
                    a, new Heard(new LinkedBlockingQueue<>(), new CompletableFuture<>()), null));
    assertTrue(
        refused.getCause().getMessage().contains("cannot check the node key"),
        refused.getCause().getMessage());
  }

  @Test
  void badRelayConfigIsRejectedWithItsPath() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                RelaySettings.from(
                    ConfigFactory.parseString(
                            "trellis.relay.others = [{ region = \"bad region!\", url = \"http://x:1\" }]")
                        .withFallback(ConfigFactory.load())));
    assertTrue(e.getMessage().contains("trellis.relay.others[0].region"), e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                RelaySettings.from(
                    ConfigFactory.parseString(
                            "trellis.relay.others = [{ region = b, url = \"ftp://x\" }]")
                        .withFallback(ConfigFactory.load())));
    assertTrue(e.getMessage().contains("trellis.relay.others[0].url"), e.getMessage());
  }
}
