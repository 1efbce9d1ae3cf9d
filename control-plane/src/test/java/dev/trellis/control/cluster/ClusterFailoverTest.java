package dev.trellis.control.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.Result;
import dev.trellis.control.admin.Admin;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.node.NodeDirectory;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.policy.PolicyRegistry;
import dev.trellis.control.relay.RelayDirectory;
import dev.trellis.control.server.ServerSettings;
import dev.trellis.control.server.TrellisServer;
import dev.trellis.control.user.User;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.dataplane.agent.ControlClient;
import dev.trellis.dataplane.relay.RelayClient;
import dev.trellis.persistence.postgres.LocalPostgres;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.relay.RelayFrame;
import dev.trellis.proto.wireguard.Curve25519;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.sharding.ShardRegion;
import org.apache.pekko.cluster.sharding.typed.GetShardRegionState;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityTypeKey;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.remote.RARP;
import org.apache.pekko.remote.transport.ThrottlerTransportAdapter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import scala.concurrent.Await;

/**
 * Three coordinator replicas in one JVM (separate actor systems on loopback, one shared PostgreSQL
 * journal): nodes registered through them; then the member holding the users registry and some node
 * entities crashes (its actor system stops without leaving the cluster). The split brain resolver
 * downs it, and the survivors serve every entity with all its events, recovered from the journal,
 * and still register new nodes.
 */
@Timeout(240)
class ClusterFailoverTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  /** For relay connections whose packets and closing the test does not look at. */
  private static final RelayClient.Listener NOT_LISTENING =
      new RelayClient.Listener() {
        @Override
        public void onPacket(byte[] src, byte[] packet, int len) {}

        @Override
        public void onClosed(String reason) {}
      };

  @TempDir Path dir;
  private LocalPostgres postgres;
  private final List<TrellisServer> servers = new ArrayList<>();

  @AfterEach
  void stop() {
    for (TrellisServer s : servers) {
      try {
        s.close();
      } catch (RuntimeException ignored) {
        // the crashed one is gone already
      }
    }
    if (postgres != null) {
      postgres.close();
    }
  }

  private static int freePort() throws Exception {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private <C, R> R ask(TrellisServer via, ActorRef<C> target, Function<ActorRef<R>, C> message)
      throws Exception {
    CompletionStage<R> stage =
        AskPattern.ask(target, message::apply, WAIT, via.system().scheduler());
    return stage.toCompletableFuture().get(WAIT.toSeconds() + 5, TimeUnit.SECONDS);
  }

  /**
   * Connects to {@code server}'s relay as the node with {@code key}, trying again while the relay
   * does not know the node yet ("not registered": its map learns of new nodes through a topic).
   */
  private static RelayClient connectWhenAdmitted(
      TrellisServer server, byte[] key, RelayClient.Listener listener) throws Exception {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (true) {
      try {
        return RelayClient.connect(URI.create(server.url()), key, listener)
            .get(WAIT.toSeconds(), TimeUnit.SECONDS);
      } catch (ExecutionException e) {
        if (System.nanoTime() > deadline
            || !String.valueOf(e.getCause().getMessage()).contains("not registered")) {
          throw e;
        }
        Thread.sleep(200);
      }
    }
  }

  private static void await(String what, Duration timeout, BooleanSupplier condition)
      throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out after " + timeout + " waiting for " + what);
      }
      Thread.sleep(100);
    }
  }

  /** Which members currently host entities of {@code key} (entity id → member index). */
  private Map<String, Integer> placement(EntityTypeKey<?> key) throws Exception {
    Map<String, Integer> where = new HashMap<>();
    for (int i = 0; i < servers.size(); i++) {
      TrellisServer s = servers.get(i);
      if (s.system().whenTerminated().isCompleted()) {
        continue;
      }
      int member = i;
      ClusterSharding sharding = ClusterSharding.get(s.system());
      ShardRegion.CurrentShardRegionState state =
          ask(
              s,
              sharding.shardState(),
              (ActorRef<ShardRegion.CurrentShardRegionState> r) -> new GetShardRegionState(key, r));
      state.getShards().forEach(shard -> shard.getEntityIds().forEach(id -> where.put(id, member)));
    }
    return where;
  }

  private long register(TrellisServer via, String authKey, String hostname) throws Exception {
    try (Session s = login(via, authKey, hostname, List.of())) {
      return s.id();
    }
  }

  /**
   * {@code n} replicas on loopback, seeds = all of them, one PostgreSQL database; returns once all
   * are Up.
   */
  private void startCluster(int n, String database) throws Exception {
    startCluster(n, database, "");
  }

  private void startCluster(int n, String database, String extraConfig) throws Exception {
    startCluster(database, Collections.nCopies(n, extraConfig));
  }

  /** One member per entry of {@code memberConfigs}, each with that extra config. */
  private void startCluster(String database, List<String> memberConfigs) throws Exception {
    int n = memberConfigs.size();
    postgres = LocalPostgres.start();
    String url = postgres.createDatabase(database);
    int[] ports = new int[n];
    List<String> seedList = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      ports[i] = freePort();
      seedList.add("\"127.0.0.1:" + ports[i] + "\"");
    }
    String seeds = String.join(", ", seedList);
    for (int i = 0; i < n; i++) {
      Path conf = dir.resolve("member-" + i + ".conf");
      Files.writeString(
          conf,
          """
                    trellis.journal = postgres
                    trellis.postgres.url = "%s"
                    trellis.postgres.user = "%s"
                    trellis.cluster { port = %d, seed-nodes = [%s], split-brain-resolver.stable-after = 2s }
                    trellis.stun.enabled = false
                    # Stopping this system is a crash: no graceful leave, the others must notice and down it.
                    pekko.coordinated-shutdown.run-by-actor-system-terminate = off
                    %s
                    """
              .formatted(url, LocalPostgres.USER, ports[i], seeds, memberConfigs.get(i)));
      servers.add(
          TrellisServer.start(ServerSettings.load(conf, dir.resolve("data-" + i), "127.0.0.1:0")));
    }
    await(
        n + " Up members",
        WAIT,
        () ->
            servers.stream()
                .allMatch(
                    s -> {
                      int up = 0;
                      for (var m : Cluster.get(s.system()).state().getMembers()) {
                        if (m.status() == MemberStatus.up()) {
                          up++;
                        }
                      }
                      return up == n;
                    }));
  }

  /** A node in session with one replica: everything it hears. */
  record Session(
      ControlClient client, BlockingQueue<ControlMessage> received, long id, String hostname)
      implements AutoCloseable {
    @Override
    public void close() {
      client.close();
    }
  }

  private Session login(TrellisServer via, String authKey, String hostname, List<String> endpoints)
      throws Exception {
    return login(via, authKey, hostname, endpoints, Curve25519.generatePrivateKey());
  }

  private Session login(
      TrellisServer via,
      String authKey,
      String hostname,
      List<String> endpoints,
      byte[] nodePrivateKey)
      throws Exception {
    BlockingQueue<ControlMessage> received = new LinkedBlockingQueue<>();
    ControlClient client =
        ControlClient.connect(
                ControlClient.newHttpClient(),
                URI.create(via.url()),
                Curve25519.generatePrivateKey(),
                new ControlClient.Listener() {
                  @Override
                  public void onMessage(ControlMessage m) {
                    received.add(m);
                  }

                  @Override
                  public void onClosed(String reason) {}
                })
            .get(WAIT.toSeconds(), TimeUnit.SECONDS);
    client.send(
        new ControlMessage.Login(
            Base64.getEncoder().encodeToString(Curve25519.publicKey(nodePrivateKey)),
            authKey,
            hostname,
            "linux",
            endpoints));
    ControlMessage m;
    do {
      m = received.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
    } while (m != null && !(m instanceof ControlMessage.LoginResult));
    assertNotNull(m, "no login result from " + via.url());
    ControlMessage.LoginResult r = (ControlMessage.LoginResult) m;
    assertTrue(r.ok(), r.error());
    return new Session(client, received, r.self().id(), hostname);
  }

  /**
   * Three relays, nodes arriving one after another on different ones: every relay learns where each
   * is held.
   */
  @Test
  void everyRelayLearnsWhichRelayHoldsEachNode() throws Exception {
    startCluster(3, "holders_test");
    String key = labUserWithReusableKey(servers.get(0));
    int[] home = {0, 1, 2, 1};
    List<AutoCloseable> open = new ArrayList<>();
    List<byte[]> nodeKeys = new ArrayList<>();
    try {
      for (int i = 0; i < home.length; i++) {
        byte[] priv = Curve25519.generatePrivateKey();
        TrellisServer via = servers.get(home[i]);
        open.add(login(via, key, "robot-" + i, List.of(), priv));
        open.add(
            RelayClient.connect(URI.create(via.url()), priv, NOT_LISTENING)
                .get(WAIT.toSeconds(), TimeUnit.SECONDS));
        nodeKeys.add(Curve25519.publicKey(priv));
      }
      for (TrellisServer s : servers) {
        for (int i = 0; i < home.length; i++) {
          String holder = servers.get(home[i]).publicKeyBase64();
          byte[] node = nodeKeys.get(i);
          int n = i;
          await(
              s.url() + " placing robot-" + n + " on relay " + home[n],
              WAIT,
              () -> holder.equals(s.relay().mesh().holderOf(node)));
        }
      }
    } finally {
      for (AutoCloseable c : open) {
        c.close();
      }
    }
  }

  /**
   * Roles decide what a member runs: a control-only member holds the entities and the control
   * sessions but no relay; a relay-only member holds no entity, refuses control logins, is no
   * control URL in the map, and relays for the nodes the control member registered.
   */
  @Test
  void rolesDecideWhatEachMemberRuns() throws Exception {
    startCluster(
        "roles_test",
        List.of("trellis.cluster.roles = [control]", "trellis.cluster.roles = [relay]"));
    TrellisServer control = servers.get(0);
    TrellisServer relay = servers.get(1);
    assertNull(control.relay(), "a control-only member runs no relay");
    assertNotNull(relay.relay());
    HttpClient http = HttpClient.newHttpClient();
    assertEquals(
        404,
        http.send(
                HttpRequest.newBuilder(URI.create(control.url() + "/relay")).build(),
                HttpResponse.BodyHandlers.ofString())
            .statusCode());
    HttpResponse<String> refused =
        http.send(
            HttpRequest.newBuilder(URI.create(relay.url() + "/control")).build(),
            HttpResponse.BodyHandlers.ofString());
    assertEquals(503, refused.statusCode());
    assertTrue(refused.body().contains("relay only"), refused.body());

    String key = labUserWithReusableKey(relay); // the admin API works from any member
    byte[] xKey = Curve25519.generatePrivateKey();
    byte[] yKey = Curve25519.generatePrivateKey();
    BlockingQueue<byte[]> atY = new LinkedBlockingQueue<>();
    try (Session x = login(control, key, "robot-x", List.of("198.51.100.1:41641"), xKey);
        Session y = login(control, key, "robot-y", List.of("198.51.100.2:41641"), yKey)) {
      // The map names the control member only as a control URL and the relay member only as a
      // relay.
      await(
          "robot-x's map: one control URL, one relay (the relay member's)",
          WAIT,
          () -> {
            sees(x, "robot-y", "198.51.100.2:41641");
            ControlMessage.NetworkInfo n = networks.get(x);
            return n != null
                && List.of(control.url()).equals(n.controlUrls())
                && n.relays().size() == 1
                && relay.url().equals(n.relays().getFirst().url())
                && relay.publicKeyBase64().equals(n.relays().getFirst().key());
          });
      // The relay member admits the registered nodes (once its map has them: they reach it through
      // a cluster topic, as agents' retries allow for) and carries their packets.
      try (RelayClient fromX = connectWhenAdmitted(relay, xKey, NOT_LISTENING);
          RelayClient toY =
              connectWhenAdmitted(
                  relay,
                  yKey,
                  new RelayClient.Listener() {
                    @Override
                    public void onPacket(byte[] src, byte[] packet, int len) {
                      atY.add(Arrays.copyOf(packet, len));
                    }

                    @Override
                    public void onClosed(String reason) {}
                  })) {
        byte[] payload = "via a relay-only member".getBytes(StandardCharsets.UTF_8);
        assertTrue(fromX.send(Curve25519.publicKey(yKey), payload, 0, payload.length));
        byte[] got = atY.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertNotNull(got, "robot-y heard nothing through the relay-only member");
        assertTrue(Arrays.equals(payload, got));
      }
      // A key nobody registered is refused there too.
      ExecutionException e =
          assertThrows(
              ExecutionException.class,
              () ->
                  RelayClient.connect(
                          URI.create(relay.url()), Curve25519.generatePrivateKey(), NOT_LISTENING)
                      .get(WAIT.toSeconds(), TimeUnit.SECONDS));
      assertTrue(e.getCause().getMessage().contains("not registered"), e.getCause().getMessage());
    }

    ClusterStatus status =
        ask(
                relay,
                relay.services().admin(),
                (ActorRef<Result<ClusterStatus>> r) -> new Admin.GetClusterStatus(r))
            .orElseThrow();
    Map<String, Set<String>> roles = new HashMap<>();
    status.members().forEach(m -> roles.put(m.address(), m.roles()));
    assertEquals(
        Map.of(
            control.system().address().toString(),
            Set.of("control"),
            relay.system().address().toString(),
            Set.of("relay")),
        roles);
    for (Map<String, Integer> perMember : status.entities().values()) {
      assertEquals(
          0,
          perMember.getOrDefault(relay.system().address().toString(), 0),
          "entities on the relay member: " + status);
    }
    assertEquals(
        2,
        status.entities().get("node").getOrDefault(control.system().address().toString(), 0),
        status.toString());
  }

  /** Creates user "lab" through {@code via}; returns a reusable auth key for it. */
  private String labUserWithReusableKey(TrellisServer via) throws Exception {
    assertTrue(
        ask(
                via,
                via.services().admin(),
                (ActorRef<Result<User>> r) -> new Admin.CreateUser("lab", r))
            .isOk());
    return ask(
            via,
            via.services().admin(),
            (ActorRef<Result<AuthKeyRegistry.CreatedAuthKey>> r) ->
                new Admin.CreateAuthKey("lab", true, false, null, Set.of(), r))
        .orElseThrow()
        .secret();
  }

  /**
   * A policy set through one replica is enforced for nodes in session with the other: each learns
   * only its team, with a filter naming its team's addresses.
   */
  @Test
  void aPolicySetOnOneReplicaIsEnforcedForNodesOnAnother() throws Exception {
    startCluster(2, "policy_test");
    TrellisServer a = servers.get(0);
    TrellisServer b = servers.get(1);
    labUserWithReusableKey(a);
    String policy =
        """
        {"tagOwners": {"tag:a": ["lab@"], "tag:b": ["lab@"]},
         "acls": [{"action": "accept", "src": ["tag:a"], "dst": ["tag:a:*"]},
                  {"action": "accept", "src": ["tag:b"], "dst": ["tag:b:*"]}]}
        """;
    assertTrue(
        ask(
                a,
                a.services().admin(),
                (ActorRef<Result<PolicyRegistry.Current>> r) -> new Admin.SetPolicy(policy, r))
            .isOk());
    String keyA = taggedKey(b, "tag:a");
    String keyB = taggedKey(b, "tag:b");
    try (Session x = login(b, keyA, "x", List.of());
        Session y = login(b, keyB, "y", List.of());
        Session z = login(a, keyA, "z", List.of())) {
      await("x (on b) seeing z (on a)", WAIT, () -> peers(x).contains("z"));
      await("z (on a) seeing x (on b)", WAIT, () -> peers(z).contains("x"));
      // b may have let x and y in an instant before the policy set through a reached it: they
      // follow it as soon as it does.
      await("y, alone in its team, seeing nobody", WAIT, () -> peers(y).isEmpty());
      await("x no longer seeing y", WAIT, () -> !peers(x).contains("y"));
      await(
          "x's filter admitting z",
          WAIT,
          () -> {
            peers(x);
            ControlMessage.PacketFilter f = filters.get(x);
            return f != null
                && f.rules() != null
                && f.rules().size() == 1
                && f.rules().getFirst().srcs().size() == 4; // x and z, IPv4 and IPv6
          });
    }
  }

  private String taggedKey(TrellisServer via, String tag) throws Exception {
    return ask(
            via,
            via.services().admin(),
            (ActorRef<Result<AuthKeyRegistry.CreatedAuthKey>> r) ->
                new Admin.CreateAuthKey("lab", true, false, null, Set.of(tag), r))
        .orElseThrow()
        .secret();
  }

  /**
   * Two replicas, a node in session with each: each node's map shows the other online with its
   * endpoints.
   */
  @Test
  void nodesOnDifferentReplicasSeeEachOtherOnlineWithTheirEndpoints() throws Exception {
    startCluster(2, "presence_test");
    TrellisServer a = servers.get(0);
    TrellisServer b = servers.get(1);
    String key = labUserWithReusableKey(a);
    try (Session one = login(a, key, "robot-a", List.of("198.51.100.1:41641"));
        Session two = login(b, key, "robot-b", List.of("198.51.100.2:41641"))) {
      // Each replica's map learns of the other's node (topic) and of its presence (presence topic).
      await(
          "robot-a seeing robot-b online with its endpoint",
          WAIT,
          () -> sees(one, "robot-b", "198.51.100.2:41641"));
      await(
          "robot-b seeing robot-a online with its endpoint",
          WAIT,
          () -> sees(two, "robot-a", "198.51.100.1:41641"));
      // Both learn every replica's URL, to fail over to.
      await(
          "robot-a knowing both replicas",
          WAIT,
          () -> {
            sees(one, "robot-b", "198.51.100.2:41641");
            ControlMessage.NetworkInfo n = networks.get(one);
            return n != null
                && n.controlUrls() != null
                && Set.copyOf(n.controlUrls()).equals(Set.of(a.url(), b.url()));
          });
      // And both relays, from live membership: its own server's (URL: the one it logged in with)
      // and the other's.
      await(
          "robot-a's relay map listing both members' relays",
          WAIT,
          () -> {
            sees(one, "robot-b", "198.51.100.2:41641");
            ControlMessage.NetworkInfo n = networks.get(one);
            return n != null
                && n.relays().size() == 2
                && n.relays().get(0).url() == null
                && b.url().equals(n.relays().get(1).url())
                && b.publicKeyBase64().equals(n.relays().get(1).key());
          });
    }

    // What `trellis cluster status` and `trellis relays list` show, from either replica.
    ClusterStatus status =
        ask(
                b,
                b.services().admin(),
                (ActorRef<Result<ClusterStatus>> r) -> new Admin.GetClusterStatus(r))
            .orElseThrow();
    assertEquals(2, status.members().size(), status.toString());
    for (ClusterStatus.MemberInfo m : status.members()) {
      assertEquals("Up", m.status(), status.toString());
      assertTrue(m.reachable(), status.toString());
      assertEquals(Set.of("control", "relay"), m.roles());
    }
    int nodeEntities =
        status.entities().get("node").values().stream().mapToInt(Integer::intValue).sum();
    assertEquals(2, nodeEntities, "both node entities are placed somewhere: " + status);
    assertEquals(
        1,
        status.entities().get("users").values().stream().mapToInt(Integer::intValue).sum(),
        status.toString());
    var relays =
        ask(
                a,
                a.services().admin(),
                (ActorRef<Result<RelayDirectory.RelayList>> r) -> new Admin.ListRelays(r))
            .orElseThrow();
    assertEquals(2, relays.relays().size(), relays.toString());
    assertEquals(
        Set.of(a.system().address().toString(), b.system().address().toString()),
        relays.relays().stream().map(RelayDirectory.RelayInfo::member).collect(Collectors.toSet()));
  }

  /**
   * Two members, a node on each one's relay: a packet from one reaches the other through its own
   * relay and one hop to the other relay (the mesh); a node cannot use the relay-only frame.
   */
  @Test
  void relaysMeshSoNodesOnDifferentRelaysReachEachOtherInOneHop() throws Exception {
    startCluster(2, "mesh_test");
    TrellisServer a = servers.get(0);
    TrellisServer b = servers.get(1);
    String key = labUserWithReusableKey(a);
    byte[] xKey = Curve25519.generatePrivateKey();
    byte[] yKey = Curve25519.generatePrivateKey();
    byte[] xPub = Curve25519.publicKey(xKey);
    byte[] yPub = Curve25519.publicKey(yKey);
    BlockingQueue<byte[][]> atY = new LinkedBlockingQueue<>();
    BlockingQueue<String> xClosed = new LinkedBlockingQueue<>();
    try (Session x = login(a, key, "robot-x", List.of(), xKey);
        Session y = login(b, key, "robot-y", List.of(), yKey);
        RelayClient toA =
            RelayClient.connect(
                    URI.create(a.url()),
                    xKey,
                    new RelayClient.Listener() {
                      @Override
                      public void onPacket(byte[] src, byte[] packet, int len) {}

                      @Override
                      public void onClosed(String reason) {
                        xClosed.add(reason);
                      }
                    })
                .get(WAIT.toSeconds(), TimeUnit.SECONDS);
        RelayClient toB =
            RelayClient.connect(
                    URI.create(b.url()),
                    yKey,
                    new RelayClient.Listener() {
                      @Override
                      public void onPacket(byte[] src, byte[] packet, int len) {
                        atY.add(new byte[][] {src.clone(), Arrays.copyOf(packet, len)});
                      }

                      @Override
                      public void onClosed(String reason) {}
                    })
                .get(WAIT.toSeconds(), TimeUnit.SECONDS)) {
      await(
          "relay a knowing b as a mesh peer, and holding robot-y there",
          WAIT,
          () ->
              a.relay().mesh().peerKeys().contains(b.publicKeyBase64())
                  && b.publicKeyBase64().equals(a.relay().mesh().holderOf(yPub)));
      await(
          "relay b knowing a as a mesh peer",
          WAIT,
          () -> b.relay().mesh().peerKeys().contains(a.publicKeyBase64()));
      byte[] payload = "through two relays".getBytes(StandardCharsets.UTF_8);
      byte[][] got = null;
      // The first packets go while a dials b (dropped, like a lost UDP packet); resend until one
      // arrives.
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (got == null && System.nanoTime() < deadline) {
        assertTrue(toA.send(yPub, payload, 0, payload.length));
        got = atY.poll(200, TimeUnit.MILLISECONDS);
      }
      assertNotNull(got, "no packet reached robot-y on relay b");
      assertTrue(Arrays.equals(xPub, got[0]), "the source is robot-x");
      assertTrue(Arrays.equals(payload, got[1]));
      assertTrue(a.relay().mesh().forwardedCount() >= 1 && b.relay().mesh().receivedCount() >= 1);
      assertEquals(0, b.relay().mesh().forwardedCount(), "b delivered it itself, no second hop");
      // Relay b counts robot-y, not relay a's link, as a connected node.
      assertEquals(1, b.relay().registry().stats().connected());

      // A node may not send what only relays send: its connection is closed.
      toA.sendRaw(RelayFrame.forwardFrame(xPub, yPub, payload, 0, payload.length));
      String reason = xClosed.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
      assertNotNull(reason, "a node sending ForwardPacket keeps its connection");
    }
    // Once robot-y's connection is gone, the replicated map no longer places it on b.
    await("robot-y no longer held anywhere", WAIT, () -> a.relay().mesh().holderOf(yPub) == null);
  }

  private final Map<Session, Map<String, ControlMessage.NodeInfo>> views = new HashMap<>();
  private final Map<Session, ControlMessage.NetworkInfo> networks = new HashMap<>();
  private final Map<Session, ControlMessage.PacketFilter> filters = new HashMap<>();

  /** The peers {@code s} knows now, by hostname (after reading what it received). */
  private Set<String> peers(Session s) {
    sees(s, "", "");
    return Set.copyOf(views.getOrDefault(s, Map.of()).keySet());
  }

  /**
   * Applies what the session has received so far; true once {@code peer} is online with {@code
   * endpoint}.
   */
  private boolean sees(Session s, String peer, String endpoint) {
    Map<String, ControlMessage.NodeInfo> view = views.computeIfAbsent(s, k -> new HashMap<>());
    ControlMessage m;
    while ((m = s.received().poll()) != null) {
      switch (m) {
        case ControlMessage.FullMap f -> {
          view.clear();
          f.peers().forEach(p -> view.put(p.hostname(), p));
          networks.put(s, f.network());
        }
        case ControlMessage.NetworkUpdate u -> networks.put(s, u.network());
        case ControlMessage.PacketFilter pf -> filters.put(s, pf);
        case ControlMessage.MapDelta d -> {
          d.upserted().forEach(p -> view.put(p.hostname(), p));
          view.values().removeIf(p -> d.removed().contains(p.id()));
        }
        default -> {}
      }
    }
    ControlMessage.NodeInfo p = view.get(peer);
    return p != null && p.online() && p.endpoints() != null && p.endpoints().contains(endpoint);
  }

  /** Drops all traffic between two members, both ways (Artery's test mode). */
  private static void blackhole(TrellisServer from, TrellisServer to) throws Exception {
    var transport = ((RARP) RARP.get(from.system().classicSystem())).provider().transport();
    // Scala objects: reached through their MODULE$ fields (javac cannot name them here).
    var both =
        (ThrottlerTransportAdapter.Direction)
            Class.forName(
                    "org.apache.pekko.remote.transport.ThrottlerTransportAdapter$Direction$Both$")
                .getField("MODULE$")
                .get(null);
    var blackhole =
        (ThrottlerTransportAdapter.ThrottleMode)
            Class.forName("org.apache.pekko.remote.transport.ThrottlerTransportAdapter$Blackhole$")
                .getField("MODULE$")
                .get(null);
    var command =
        new ThrottlerTransportAdapter.SetThrottle(
            Cluster.get(to.system()).selfMember().address(), both, blackhole);
    Await.result(
        transport.managementCommand(command), scala.concurrent.duration.Duration.create(10, "s"));
  }

  /**
   * One member cut off from the other two: the split brain resolver (keep-majority) keeps the two,
   * which down the third and go on serving; the third, alone and in the minority, downs itself and
   * stops.
   */
  @Test
  void aPartitionedMemberIsDownedByTheMajorityAndStops() throws Exception {
    startCluster(3, "partition_test", "pekko.remote.artery.advanced.test-mode = on");
    TrellisServer a = servers.get(0);
    TrellisServer b = servers.get(1);
    TrellisServer c = servers.get(2);
    assertTrue(
        ask(a, a.services().admin(), (ActorRef<Result<User>> r) -> new Admin.CreateUser("lab", r))
            .isOk());
    long cutAt = System.nanoTime();
    for (TrellisServer majority : List.of(a, b)) {
      blackhole(majority, c);
      blackhole(c, majority);
    }
    await(
        "the minority member stopping itself",
        Duration.ofSeconds(90),
        () -> c.system().whenTerminated().isCompleted());
    long stoppedMs = (System.nanoTime() - cutAt) / 1_000_000;
    await(
        "the majority without the cut-off member",
        Duration.ofSeconds(60),
        () ->
            List.of(a, b).stream()
                .allMatch(
                    s -> {
                      int up = 0;
                      for (var m : Cluster.get(s.system()).state().getMembers()) {
                        if (m.status() == MemberStatus.up()) {
                          up++;
                        }
                      }
                      return up == 2 && Cluster.get(s.system()).state().getUnreachable().isEmpty();
                    }));
    // The majority still serves the registries, wherever they were.
    Result<Admin.UserList> users;
    int unavailable = 0;
    do {
      users =
          ask(
              b,
              b.services().admin(),
              (ActorRef<Result<Admin.UserList>> r) -> new Admin.ListUsers(r));
    } while (users instanceof Result.Rejected<Admin.UserList> no
        && no.code() == Result.Code.UNAVAILABLE
        && ++unavailable < 12);
    assertEquals(List.of("lab"), users.orElseThrow().users().stream().map(User::name).toList());
    System.out.printf(
        "[trellis-cluster-metric] partition: the cut-off member stopped itself %d ms after the cut%n",
        stoppedMs);
  }

  @Test
  void aCrashedReplicasEntitiesAreServedBySurvivorsWithAllTheirEvents() throws Exception {
    startCluster(3, "cluster_test");

    TrellisServer first = servers.get(0);
    Result<User> user =
        ask(
            first,
            first.services().admin(),
            (ActorRef<Result<User>> r) -> new Admin.CreateUser("lab", r));
    assertTrue(user.isOk(), String.valueOf(user));
    String key =
        ask(
                first,
                first.services().admin(),
                (ActorRef<Result<AuthKeyRegistry.CreatedAuthKey>> r) ->
                    new Admin.CreateAuthKey("lab", true, false, null, Set.of(), r))
            .orElseThrow()
            .secret();
    // Nodes registered through every replica, then an event more on each (a rename).
    Map<Long, String> names = new HashMap<>();
    for (int i = 0; i < 9; i++) {
      TrellisServer via = servers.get(i % 3);
      long id = register(via, key, "robot-" + i);
      String name = "bot-" + i;
      Result<NodeRecord> renamed =
          ask(
              via,
              via.services().admin(),
              (ActorRef<Result<NodeRecord>> r) -> new Admin.RenameNode(id, name, r));
      assertTrue(renamed.isOk(), String.valueOf(renamed));
      names.put(id, "bot-" + i);
    }

    // Crash the member holding the users registry.
    Map<String, Integer> registries =
        placement(EntityTypeKey.create(UserRegistry.Command.class, "users"));
    final int victim = registries.get(ShardedRegistry.ENTITY_ID);
    Map<String, Integer> nodesBefore = placement(NodeEntity.TYPE_KEY);
    long onVictim = nodesBefore.values().stream().filter(m -> m == victim).count();
    TrellisServer crashed = servers.get(victim);
    long crashAt = System.nanoTime();
    crashed.system().terminate();
    crashed
        .system()
        .getWhenTerminated()
        .toCompletableFuture()
        .get(WAIT.toSeconds(), TimeUnit.SECONDS);

    TrellisServer survivor = servers.get((victim + 1) % 3);
    // Every entity answers from a survivor, with all its events (the rename is the last one).
    // Until the resolver has downed the lost member and its shards have moved, the admin answers
    // UNAVAILABLE.
    Result<Admin.UserList> users;
    int unavailable = 0;
    while (true) {
      users =
          ask(
              survivor,
              survivor.services().admin(),
              (ActorRef<Result<Admin.UserList>> r) -> new Admin.ListUsers(r));
      if (!(users instanceof Result.Rejected<Admin.UserList> no
              && no.code() == Result.Code.UNAVAILABLE)
          || ++unavailable > 12) {
        break;
      }
    }
    long usersBackMs = (System.nanoTime() - crashAt) / 1_000_000;
    assertTrue(users.isOk(), String.valueOf(users));
    assertEquals(List.of("lab"), users.orElseThrow().users().stream().map(User::name).toList());
    for (var e : names.entrySet()) {
      Optional<NodeRecord> node =
          ask(
              survivor,
              survivor.services().nodes(),
              (ActorRef<Optional<NodeRecord>> r) ->
                  new NodeDirectory.Forward(e.getKey(), new NodeEntity.Get(r)));
      assertTrue(node.isPresent(), "node " + e.getKey() + " lost");
      assertEquals(e.getValue(), node.get().hostname(), "node " + e.getKey() + " lost events");
    }
    Map<String, Integer> nodesAfter = placement(NodeEntity.TYPE_KEY);
    assertTrue(nodesAfter.values().stream().noneMatch(m -> m == victim));
    // And the cluster still takes new nodes (the address allocator answers from a survivor too).
    long fresh = register(survivor, key, "robot-new");
    assertTrue(!names.containsKey(fresh));
    System.out.printf(
        "[trellis-cluster-metric] crash of member %d (users registry, %d of %d node entities): users answered "
            + "from a survivor %d ms after the crash (%d UNAVAILABLE answers before)%n",
        victim, onVictim, nodesBefore.size(), usersBackMs, unavailable);
  }
}
