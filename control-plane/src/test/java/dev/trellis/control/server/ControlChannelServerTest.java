package dev.trellis.control.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.Result;
import dev.trellis.control.admin.Admin;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeDirectory;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.user.User;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.dataplane.agent.ControlClient;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.wireguard.Curve25519;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Predicate;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The control channel end to end over real HTTP and WebSocket, with protocol-level nodes. */
@Timeout(60)
class ControlChannelServerTest {
  private static final Duration WAIT = Duration.ofSeconds(15);

  @TempDir Path dataDir;
  private TrellisServer server;
  private HttpClient http;
  private final List<SimNode> nodes = new ArrayList<>();

  @TempDir Path configDir;

  @BeforeEach
  void start() throws Exception {
    // A short ephemeral timeout so the reaping test need not wait minutes.
    Path config = configDir.resolve("trellis.conf");
    Files.writeString(config, "trellis.ephemeral-timeout = 1s\n");
    server = TrellisServer.start(ServerSettings.load(config, dataDir, "127.0.0.1:0"));
    http = ControlClient.newHttpClient();
  }

  @AfterEach
  void stop() {
    nodes.forEach(SimNode::close);
    if (server != null) {
      server.close();
    }
  }

  private <C, R> R ask(ActorRef<C> target, Function<ActorRef<R>, C> message) throws Exception {
    CompletionStage<R> stage =
        AskPattern.ask(target, message::apply, WAIT, server.system().scheduler());
    return stage.toCompletableFuture().get(WAIT.toSeconds(), TimeUnit.SECONDS);
  }

  private String authKey(String user, boolean reusable) throws Exception {
    return authKey(user, reusable, false);
  }

  private String authKey(String user, boolean reusable, boolean ephemeral) throws Exception {
    Result<User> created =
        ask(server.services().users(), r -> new UserRegistry.CreateUser(user, r));
    assertTrue(
        created.isOk() || ((Result.Rejected<User>) created).code() == Result.Code.ALREADY_EXISTS);
    Result<AuthKeyRegistry.CreatedAuthKey> key =
        ask(
            server.services().authKeys(),
            r -> new AuthKeyRegistry.CreateAuthKey(user, reusable, ephemeral, null, Set.of(), r));
    return key.orElseThrow().secret();
  }

  /** A node speaking the protocol, without a WireGuard device. */
  final class SimNode implements ControlClient.Listener {
    final byte[] machineKey = Curve25519.generatePrivateKey();
    final String nodeKey =
        Base64.getEncoder().encodeToString(Curve25519.publicKey(Curve25519.generatePrivateKey()));
    final BlockingQueue<ControlMessage> received = new LinkedBlockingQueue<>();
    final CompletableFuture<String> closed = new CompletableFuture<>();
    ControlClient client;

    SimNode() {
      nodes.add(this);
    }

    SimNode connect() throws Exception {
      client =
          ControlClient.connect(http, URI.create(server.url()), machineKey, this)
              .get(WAIT.toSeconds(), TimeUnit.SECONDS);
      return this;
    }

    ControlMessage.LoginResult login(String authKey, String hostname) throws Exception {
      client.send(
          new ControlMessage.Login(
              nodeKey, authKey, hostname, "linux", List.of("198.51.100.1:41641")));
      return (ControlMessage.LoginResult) await(m -> m instanceof ControlMessage.LoginResult);
    }

    ControlMessage await(Predicate<ControlMessage> match) throws InterruptedException {
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (System.nanoTime() < deadline) {
        ControlMessage m = received.poll(100, TimeUnit.MILLISECONDS);
        if (m != null && match.test(m)) {
          return m;
        }
      }
      throw new AssertionError(
          "no matching control message within " + WAIT + "; closed: " + closed.getNow("open"));
    }

    @Override
    public void onMessage(ControlMessage message) {
      received.add(message);
    }

    @Override
    public void onClosed(String reason) {
      closed.complete(reason);
    }

    void close() {
      if (client != null) {
        client.close();
      }
    }
  }

  @Test
  void nodesRegisterSeeEachOtherAndLeave() throws Exception {
    String key = authKey("lab", true);
    SimNode a = new SimNode().connect();
    ControlMessage.LoginResult la = a.login(key, "robot-a");
    assertTrue(la.ok(), la.error());
    assertEquals("robot-a", la.self().hostname());
    assertTrue(
        la.self().addresses().getFirst().startsWith("100."), la.self().addresses().toString());
    ControlMessage.FullMap mapA =
        (ControlMessage.FullMap) a.await(m -> m instanceof ControlMessage.FullMap);
    assertTrue(mapA.peers().isEmpty());

    SimNode b = new SimNode().connect();
    ControlMessage.LoginResult lb = b.login(key, "robot-a"); // same name: gets a suffix
    assertTrue(lb.ok(), lb.error());
    assertEquals("robot-a-1", lb.self().hostname());
    ControlMessage.FullMap mapB =
        (ControlMessage.FullMap) b.await(m -> m instanceof ControlMessage.FullMap);
    assertEquals(
        List.of(la.self().id()), mapB.peers().stream().map(ControlMessage.NodeInfo::id).toList());
    assertTrue(mapB.peers().getFirst().online());

    // A learns about B, online, through a delta (an earlier one may show it registered but not yet
    // online).
    ControlMessage.MapDelta delta =
        (ControlMessage.MapDelta)
            a.await(
                m ->
                    m instanceof ControlMessage.MapDelta d
                        && d.upserted().stream()
                            .anyMatch(n -> n.id() == lb.self().id() && n.online()));
    ControlMessage.NodeInfo bInfo =
        delta.upserted().stream().filter(n -> n.id() == lb.self().id()).findFirst().orElseThrow();
    assertEquals(b.nodeKey, bInfo.nodeKey());
    assertEquals(List.of("198.51.100.1:41641"), bInfo.endpoints());

    // Deleting B removes it from A's map and ends B's session.
    Result<NodeRecord> deleted =
        ask(
            server.services().nodes(),
            r -> new NodeDirectory.Forward(lb.self().id(), new NodeEntity.Delete(r)));
    assertTrue(deleted.isOk());
    a.await(m -> m instanceof ControlMessage.MapDelta d && d.removed().contains(lb.self().id()));
    b.await(m -> m instanceof ControlMessage.Goodbye);
    assertNotNull(b.closed.get(WAIT.toSeconds(), TimeUnit.SECONDS));
  }

  @Test
  void resumeWithoutKeyKeepsAddressesAndUnknownMachineNeedsAuth() throws Exception {
    String key = authKey("lab", false);
    SimNode a = new SimNode().connect();
    ControlMessage.LoginResult first = a.login(key, "robot");
    assertTrue(first.ok(), first.error());
    a.close();

    SimNode again = new SimNode();
    System.arraycopy(a.machineKey, 0, again.machineKey, 0, 32);
    again.connect();
    ControlMessage.LoginResult resumed = again.login(null, "robot");
    assertTrue(resumed.ok(), resumed.error());
    assertEquals(first.self().id(), resumed.self().id());
    assertEquals(first.self().addresses(), resumed.self().addresses());

    SimNode stranger = new SimNode().connect();
    ControlMessage.LoginResult refused = stranger.login(null, "stranger");
    assertFalse(refused.ok());
    assertEquals("NEEDS_AUTH", refused.code());
    // The single-use key is spent for any other machine.
    SimNode thief = new SimNode().connect();
    ControlMessage.LoginResult used = thief.login(key, "thief");
    assertFalse(used.ok());
    assertEquals("USED", used.code());
    SimNode forger = new SimNode().connect();
    ControlMessage.LoginResult unknown =
        forger.login("trellis-auth-000000000000-" + "0".repeat(32), "forger");
    assertFalse(unknown.ok());
    assertEquals("NOT_FOUND", unknown.code());
  }

  @Test
  void expiredNodeLeavesEveryMapAndMustReauthenticate() throws Exception {
    String key = authKey("lab", true);
    SimNode a = new SimNode().connect();
    assertTrue(a.login(key, "a").ok());
    SimNode b = new SimNode().connect();
    ControlMessage.LoginResult lb = b.login(key, "b");
    assertTrue(lb.ok());
    a.await(
        m ->
            m instanceof ControlMessage.MapDelta d
                && d.upserted().stream().anyMatch(n -> n.id() == lb.self().id()));

    Result<NodeRecord> expired =
        ask(server.services().admin(), r -> new Admin.ExpireNode(lb.self().id(), r));
    assertTrue(expired.isOk());
    a.await(m -> m instanceof ControlMessage.MapDelta d && d.removed().contains(lb.self().id()));
    b.await(m -> m instanceof ControlMessage.Goodbye);

    SimNode back = new SimNode();
    System.arraycopy(b.machineKey, 0, back.machineKey, 0, 32);
    back.connect();
    ControlMessage.LoginResult refused = back.login(null, "b");
    assertFalse(refused.ok());
    assertEquals("NEEDS_AUTH", refused.code());
  }

  @Test
  void ephemeralNodeIsDeletedAfterGoingOffline() throws Exception {
    String key = authKey("lab", true, true);
    SimNode stays = new SimNode().connect();
    assertTrue(stays.login(authKey("lab", true), "stays").ok());
    SimNode visitor = new SimNode().connect();
    ControlMessage.LoginResult lv = visitor.login(key, "visitor");
    assertTrue(lv.ok());
    assertTrue(lv.self().ephemeral());
    visitor.close();
    // Offline for the 1 s timeout, then deleted: peers see it removed and its address is free.
    stays.await(
        m -> m instanceof ControlMessage.MapDelta d && d.removed().contains(lv.self().id()));
    List<AddressAllocator.Allocation> allocations =
        ask(server.services().allocator(), AddressAllocator.ListAllocations::new);
    assertFalse(
        allocations.stream().anyMatch(a -> a.nodeId() == lv.self().id()), allocations.toString());
  }

  @Test
  void forgedOrGarbageHandshakesAreRefused() throws Exception {
    // Not a handshake at all: the server closes the socket.
    CompletableFuture<Integer> closed = new CompletableFuture<>();
    WebSocket ws =
        http.newWebSocketBuilder()
            .buildAsync(
                URI.create(server.url().replace("http", "ws") + "/control"),
                new WebSocket.Listener() {
                  @Override
                  public CompletionStage<?> onClose(
                      WebSocket webSocket, int statusCode, String reason) {
                    closed.complete(statusCode);
                    return null;
                  }

                  @Override
                  public void onError(WebSocket webSocket, Throwable error) {
                    closed.complete(-1);
                  }
                })
            .get(WAIT.toSeconds(), TimeUnit.SECONDS);
    ws.sendBinary(ByteBuffer.wrap(new byte[148]), true);
    assertNotNull(closed.get(WAIT.toSeconds(), TimeUnit.SECONDS));

    // GET /key answers, other methods do not.
    HttpResponse<String> key =
        http.send(
            HttpRequest.newBuilder(URI.create(server.url() + "/key")).build(),
            HttpResponse.BodyHandlers.ofString());
    assertEquals(200, key.statusCode());
    assertTrue(key.body().contains(server.publicKeyBase64()));
    HttpResponse<String> post =
        http.send(
            HttpRequest.newBuilder(URI.create(server.url() + "/key"))
                .POST(HttpRequest.BodyPublishers.ofString("x"))
                .build(),
            HttpResponse.BodyHandlers.ofString());
    assertTrue(post.statusCode() >= 400, "POST /key answered " + post.statusCode());
    assertInstanceOf(String.class, key.body());
  }
}
