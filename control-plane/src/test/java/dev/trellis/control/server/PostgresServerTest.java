package dev.trellis.control.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.Result;
import dev.trellis.control.admin.Admin;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.user.User;
import dev.trellis.dataplane.agent.ControlClient;
import dev.trellis.persistence.postgres.LocalPostgres;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.wireguard.Curve25519;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code trellis.journal = postgres}: users, keys and nodes live in a real PostgreSQL, so a server
 * started on an empty data directory against the same database has them all.
 */
@Timeout(180)
class PostgresServerTest {
  private static final Duration WAIT = Duration.ofSeconds(30);
  private static LocalPostgres postgres;

  @TempDir Path first;
  @TempDir Path second;

  @BeforeAll
  static void startPostgres() throws Exception {
    postgres = LocalPostgres.start();
  }

  @AfterAll
  static void stopPostgres() {
    if (postgres != null) {
      postgres.close();
    }
  }

  private static ServerSettings settings(Path dataDir, String url) throws Exception {
    Path conf = dataDir.resolve("trellis.conf");
    Files.writeString(
        conf,
        """
                trellis.journal = postgres
                trellis.postgres.url = "%s"
                trellis.postgres.user = "%s"
                """
            .formatted(url, LocalPostgres.USER));
    return ServerSettings.load(conf, dataDir.resolve("data"), "127.0.0.1:0");
  }

  private static <C, R> R ask(
      TrellisServer server, ActorRef<C> target, Function<ActorRef<R>, C> message) throws Exception {
    CompletionStage<R> stage =
        AskPattern.ask(target, message::apply, WAIT, server.system().scheduler());
    return stage.toCompletableFuture().get(WAIT.toSeconds(), TimeUnit.SECONDS);
  }

  @Test
  void aServerOnAnEmptyDataDirFindsEverythingInPostgres() throws Exception {
    String url = postgres.createDatabase("server_test");
    long nodeId;
    String address;
    try (TrellisServer server = TrellisServer.start(settings(first, url))) {
      Result<User> user =
          ask(
              server,
              server.services().admin(),
              (ActorRef<Result<User>> r) -> new Admin.CreateUser("lab", r));
      assertTrue(user.isOk());
      String key =
          ask(
                  server,
                  server.services().admin(),
                  (ActorRef<Result<AuthKeyRegistry.CreatedAuthKey>> r) ->
                      new Admin.CreateAuthKey("lab", true, false, null, Set.of(), r))
              .orElseThrow()
              .secret();
      BlockingQueue<ControlMessage> received = new LinkedBlockingQueue<>();
      try (ControlClient client =
          ControlClient.connect(
                  ControlClient.newHttpClient(),
                  URI.create(server.url()),
                  Curve25519.generatePrivateKey(),
                  new ControlClient.Listener() {
                    @Override
                    public void onMessage(ControlMessage m) {
                      received.add(m);
                    }

                    @Override
                    public void onClosed(String reason) {}
                  })
              .get(WAIT.toSeconds(), TimeUnit.SECONDS)) {
        client.send(
            new ControlMessage.Login(
                Base64.getEncoder()
                    .encodeToString(Curve25519.publicKey(Curve25519.generatePrivateKey())),
                key,
                "robot-1",
                "linux",
                List.of()));
        ControlMessage m;
        do {
          m = received.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
        } while (m != null && !(m instanceof ControlMessage.LoginResult));
        ControlMessage.LoginResult result = (ControlMessage.LoginResult) m;
        assertTrue(result != null && result.ok(), String.valueOf(result));
        nodeId = result.self().id();
        address = result.self().addresses().getFirst();
      }
    }
    assertTrue(Files.isDirectory(first.resolve("data")));
    assertTrue(
        !Files.exists(first.resolve("data/journal")),
        "no LevelDB journal with trellis.journal = postgres");

    try (TrellisServer server = TrellisServer.start(settings(second, url))) {
      Admin.NodeList nodes =
          ask(
                  server,
                  server.services().admin(),
                  (ActorRef<Result<Admin.NodeList>> r) -> new Admin.ListNodes(null, r))
              .orElseThrow();
      assertEquals(1, nodes.nodes().size(), nodes.toString());
      assertEquals(nodeId, nodes.nodes().getFirst().node().id());
      assertEquals("robot-1", nodes.nodes().getFirst().node().hostname());
      assertEquals(
          address.replaceAll("/\\d+$", ""),
          nodes.nodes().getFirst().node().ipv4().replaceAll("/\\d+$", ""));
    }
  }

  @Test
  void aBadJournalSettingIsAClearError() throws Exception {
    Path conf = first.resolve("bad.conf");
    Files.writeString(conf, "trellis.journal = postgres\ntrellis.postgres.url = \"mysql://x\"\n");
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class, () -> ServerSettings.load(conf, first, "127.0.0.1:0"));
    assertTrue(e.getMessage().contains("trellis.postgres.url"), e.getMessage());
    Files.writeString(conf, "trellis.journal = mongo\n");
    e =
        assertThrows(
            IllegalArgumentException.class, () -> ServerSettings.load(conf, first, "127.0.0.1:0"));
    assertTrue(e.getMessage().contains("leveldb or postgres"), e.getMessage());
  }
}
