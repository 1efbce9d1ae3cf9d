package dev.trellis.control.admin;

import static dev.trellis.control.PersistentTestKit.TIMEOUT;
import static dev.trellis.control.PersistentTestKit.code;
import static dev.trellis.control.PersistentTestKit.ok;
import static dev.trellis.control.PersistentTestKit.randomKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.PersistentTestKit;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.map.NetworkMap;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeDirectory;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.policy.PolicyRegistry;
import dev.trellis.control.user.User;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.proto.control.ControlMessage;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The admin protocol over the real entities on a real LevelDB journal. */
class AdminTest {

  @TempDir Path dataDir;
  private PersistentTestKit testKit;
  private ActorRef<UserRegistry.Command> users;
  private ActorRef<AddressAllocator.Command> allocator;
  private ActorRef<NodeDirectory.Command> nodes;
  private ActorRef<NetworkMap.Command> map;
  private ActorRef<Admin.Command> admin;

  @BeforeEach
  void start() {
    testKit = new PersistentTestKit(dataDir);
    spawn();
  }

  private void spawn() {
    var kit = testKit.kit();
    users = kit.spawn(UserRegistry.create());
    ActorRef<AuthKeyRegistry.Command> authKeys = kit.spawn(AuthKeyRegistry.create());
    ActorRef<ApiKeyRegistry.Command> apiKeys = kit.spawn(ApiKeyRegistry.create());
    allocator = kit.spawn(AddressAllocator.create());
    map =
        kit.spawn(
            NetworkMap.create(
                Clock.systemUTC(),
                Duration.ofMinutes(5),
                id -> {},
                new ControlMessage.NetworkInfo(
                    AddressAllocator.DEFAULT_IPV4_PREFIX, AddressAllocator.DEFAULT_IPV6_PREFIX)));
    ActorRef<NodeEntity.Published> published =
        kit.spawn(
            Behaviors.<NodeEntity.Published>receiveMessage(
                p -> {
                  map.tell(new NetworkMap.FromNodes(p));
                  return Behaviors.same();
                }));
    nodes = kit.spawn(NodeDirectory.create(kit.system(), published, published));
    admin =
        kit.spawn(
            Admin.create(
                users,
                authKeys,
                apiKeys,
                allocator,
                nodes,
                map,
                kit.spawn(PolicyRegistry.create(kit.system().ignoreRef())),
                Clock.systemUTC()));
  }

  @AfterEach
  void stop() {
    testKit.close();
  }

  private <T> Result<T> ask(Function<ActorRef<Result<T>>, Admin.Command> command) {
    return testKit.ask(admin, command);
  }

  /** Registers a node the way a control session does, without Admin. */
  private NodeRecord register(String user, String hostname) {
    String machineKey = randomKey();
    AddressAllocator.Allocation a =
        ok(
            testKit.ask(
                allocator,
                (ActorRef<Result<AddressAllocator.Allocation>> r) ->
                    new AddressAllocator.Allocate(machineKey, hostname, r)));
    NodeRecord node =
        ok(
            testKit.ask(
                nodes,
                (ActorRef<Result<NodeRecord>> r) ->
                    new NodeDirectory.Forward(
                        a.nodeId(),
                        new NodeEntity.Register(
                            machineKey,
                            randomKey(),
                            user,
                            a.hostname(),
                            a.ipv4(),
                            a.ipv6(),
                            Set.of(),
                            false,
                            null,
                            Instant.now(),
                            r))));
    users.tell(new UserRegistry.AttachNode(user, node.id(), testKit.kit().system().ignoreRef()));
    return node;
  }

  private User user(String name) {
    return testKit
        .<UserRegistry.Command, Optional<User>>ask(users, r -> new UserRegistry.GetUser(name, r))
        .orElseThrow();
  }

  @Test
  void usersAreCreatedListedAndDeleted() {
    User alice = ok(this.<User>ask(r -> new Admin.CreateUser("alice", r)));
    assertEquals("alice", alice.name());
    assertEquals(Code.ALREADY_EXISTS, code(this.<User>ask(r -> new Admin.CreateUser("alice", r))));
    assertEquals(Code.INVALID, code(this.<User>ask(r -> new Admin.CreateUser("Not Valid", r))));
    ok(this.<User>ask(r -> new Admin.CreateUser("bob", r)));
    assertEquals(
        List.of("alice", "bob"),
        ok(this.<Admin.UserList>ask(Admin.ListUsers::new)).users().stream()
            .map(User::name)
            .toList());

    register("alice", "robot");
    assertEquals(Code.CONFLICT, code(this.<User>ask(r -> new Admin.DeleteUser("alice", r))));
    assertEquals(Code.NOT_FOUND, code(this.<User>ask(r -> new Admin.DeleteUser("nobody", r))));
    assertEquals("bob", ok(this.<User>ask(r -> new Admin.DeleteUser("bob", r))).name());
    assertEquals(
        List.of("alice"),
        ok(this.<Admin.UserList>ask(Admin.ListUsers::new)).users().stream()
            .map(User::name)
            .toList());
  }

  @Test
  void authKeysNeedAnExistingUserAndCanBeExpired() {
    ok(this.<User>ask(r -> new Admin.CreateUser("alice", r)));
    ok(this.<User>ask(r -> new Admin.CreateUser("bob", r)));
    Result<AuthKeyRegistry.CreatedAuthKey> unknown =
        this.<AuthKeyRegistry.CreatedAuthKey>ask(
            r -> new Admin.CreateAuthKey("carol", false, false, null, Set.of(), r));
    assertEquals(Code.NOT_FOUND, code(unknown));
    assertTrue(((Result.Rejected<?>) unknown).message().contains("carol"));

    Instant before = Instant.now();
    var created =
        ok(
            this.<AuthKeyRegistry.CreatedAuthKey>ask(
                r ->
                    new Admin.CreateAuthKey(
                        "alice", true, true, Duration.ofHours(24), Set.of("tag:robot"), r)));
    assertTrue(created.secret().startsWith(AuthKeyRegistry.SECRET_PREFIX));
    var key = created.key();
    assertEquals("alice", key.user());
    assertTrue(key.reusable() && key.ephemeral());
    assertEquals(Set.of("tag:robot"), key.tags());
    assertFalse(key.expiration().isBefore(before.plus(Duration.ofHours(24))));
    assertFalse(key.expiration().isAfter(Instant.now().plus(Duration.ofHours(24))));

    ok(
        this.<AuthKeyRegistry.CreatedAuthKey>ask(
            r -> new Admin.CreateAuthKey("bob", false, false, null, null, r)));
    assertEquals(
        Code.INVALID,
        code(
            this.<AuthKeyRegistry.CreatedAuthKey>ask(
                r -> new Admin.CreateAuthKey("alice", false, false, null, Set.of("robot"), r))));
    assertEquals(
        Code.INVALID,
        code(
            this.<AuthKeyRegistry.CreatedAuthKey>ask(
                r -> new Admin.CreateAuthKey("alice", false, false, Duration.ZERO, Set.of(), r))));
    assertEquals(
        Code.INVALID,
        code(
            this.<AuthKeyRegistry.CreatedAuthKey>ask(
                r ->
                    new Admin.CreateAuthKey(
                        "alice", false, false, Duration.ofHours(-1), Set.of(), r))));

    assertEquals(
        2, ok(this.<Admin.AuthKeyList>ask(r -> new Admin.ListAuthKeys(null, r))).authKeys().size());
    assertEquals(
        List.of(key.id()),
        ok(this.<Admin.AuthKeyList>ask(r -> new Admin.ListAuthKeys("alice", r))).authKeys().stream()
            .map(AuthKeyRegistry.AuthKey::id)
            .toList());
    assertEquals(
        Code.NOT_FOUND, code(this.<Admin.AuthKeyList>ask(r -> new Admin.ListAuthKeys("carol", r))));

    assertTrue(
        ok(this.<AuthKeyRegistry.AuthKey>ask(r -> new Admin.ExpireAuthKey(key.id(), r))).expired());
    assertEquals(
        Code.NOT_FOUND,
        code(this.<AuthKeyRegistry.AuthKey>ask(r -> new Admin.ExpireAuthKey("nosuchkey000", r))));
  }

  @Test
  void nodesAreListedWithPresence() {
    ok(this.<User>ask(r -> new Admin.CreateUser("alice", r)));
    ok(this.<User>ask(r -> new Admin.CreateUser("bob", r)));
    NodeRecord one = register("alice", "robot");
    NodeRecord two = register("bob", "robot");
    assertEquals("robot-1", two.hostname());

    TestProbe<NetworkMap.SessionOutput> session = testKit.kit().createTestProbe();
    map.tell(new NetworkMap.Connect(one, session.ref(), List.of("192.0.2.1:41641")));
    session.receiveMessage(TIMEOUT);

    List<Admin.NodeSummary> all =
        ok(this.<Admin.NodeList>ask(r -> new Admin.ListNodes(null, r))).nodes();
    assertEquals(List.of(one.id(), two.id()), all.stream().map(n -> n.node().id()).toList());
    Admin.NodeSummary first = all.getFirst();
    assertEquals(one.hostname(), first.node().hostname());
    assertEquals(one.ipv4(), first.node().ipv4());
    assertEquals(one.machineKey(), first.node().machineKey());
    assertTrue(first.online());
    assertNotNull(first.lastSeen());
    assertEquals(List.of("192.0.2.1:41641"), first.endpoints());
    assertFalse(all.get(1).online());
    assertNull(all.get(1).lastSeen());

    assertEquals(
        List.of(two.id()),
        ok(this.<Admin.NodeList>ask(r -> new Admin.ListNodes("bob", r))).nodes().stream()
            .map(n -> n.node().id())
            .toList());
    assertEquals(
        Code.NOT_FOUND, code(this.<Admin.NodeList>ask(r -> new Admin.ListNodes("carol", r))));
  }

  @Test
  void renameIsApprovedByTheAllocatorFirst() {
    ok(this.<User>ask(r -> new Admin.CreateUser("alice", r)));
    NodeRecord one = register("alice", "alpha");
    NodeRecord two = register("alice", "beta");

    Result<NodeRecord> taken =
        this.<NodeRecord>ask(r -> new Admin.RenameNode(two.id(), "alpha", r));
    assertEquals(Code.ALREADY_EXISTS, code(taken));
    assertTrue(((Result.Rejected<?>) taken).message().contains("alpha"), taken.toString());
    assertEquals(
        "beta",
        ok(this.<Admin.NodeList>ask(r -> new Admin.ListNodes(null, r)))
            .nodes()
            .get(1)
            .node()
            .hostname());

    assertEquals(
        Code.INVALID, code(this.<NodeRecord>ask(r -> new Admin.RenameNode(two.id(), "-bad-", r))));
    assertEquals(
        "gamma",
        ok(this.<NodeRecord>ask(r -> new Admin.RenameNode(two.id(), "Gamma", r))).hostname());
    // The old name is free again, in the allocator too.
    assertEquals(
        "beta",
        ok(this.<NodeRecord>ask(r -> new Admin.RenameNode(one.id(), "beta", r))).hostname());
    assertEquals(
        Code.NOT_FOUND, code(this.<NodeRecord>ask(r -> new Admin.RenameNode(99, "delta", r))));
  }

  @Test
  void expireTagAndDeleteNodes() {
    ok(this.<User>ask(r -> new Admin.CreateUser("alice", r)));
    NodeRecord node = register("alice", "robot");

    NodeRecord tagged =
        ok(this.<NodeRecord>ask(r -> new Admin.TagNode(node.id(), Set.of("tag:b", "tag:a"), r)));
    assertEquals(Set.of("tag:a", "tag:b"), tagged.tags());
    assertEquals(
        Code.INVALID,
        code(this.<NodeRecord>ask(r -> new Admin.TagNode(node.id(), Set.of("tag:OK", "x"), r))));
    assertEquals(
        Set.of("tag:a", "tag:b"),
        ok(this.<Admin.NodeList>ask(r -> new Admin.ListNodes(null, r)))
            .nodes()
            .getFirst()
            .node()
            .tags());

    assertTrue(ok(this.<NodeRecord>ask(r -> new Admin.ExpireNode(node.id(), r))).expired());
    assertTrue(
        ok(this.<Admin.NodeList>ask(r -> new Admin.ListNodes(null, r)))
            .nodes()
            .getFirst()
            .node()
            .expired());

    assertEquals(1, user("alice").nodeCount());
    assertEquals(node.id(), ok(this.<NodeRecord>ask(r -> new Admin.DeleteNode(node.id(), r))).id());
    assertEquals(
        List.of(), ok(this.<Admin.NodeList>ask(r -> new Admin.ListNodes(null, r))).nodes());
    assertEquals(
        Optional.empty(),
        testKit.<AddressAllocator.Command, Optional<AddressAllocator.Allocation>>ask(
            allocator, r -> new AddressAllocator.FindByMachineKey(node.machineKey(), r)));
    assertEquals(0, user("alice").nodeCount());
    ok(this.<User>ask(r -> new Admin.DeleteUser("alice", r)));

    assertEquals(
        Code.NOT_FOUND, code(this.<NodeRecord>ask(r -> new Admin.DeleteNode(node.id(), r))));
    assertEquals(
        Code.NOT_FOUND, code(this.<NodeRecord>ask(r -> new Admin.ExpireNode(node.id(), r))));
    assertEquals(
        Code.NOT_FOUND, code(this.<NodeRecord>ask(r -> new Admin.TagNode(node.id(), Set.of(), r))));
  }

  @Test
  void apiKeysAreCreatedListedAndExpired() {
    var created =
        ok(
            this.<ApiKeyRegistry.CreatedApiKey>ask(
                r -> new Admin.CreateApiKey(Duration.ofDays(90), r)));
    assertTrue(created.secret().startsWith(ApiKeyRegistry.SECRET_PREFIX));
    assertNotNull(created.key().expiration());
    var forever = ok(this.<ApiKeyRegistry.CreatedApiKey>ask(r -> new Admin.CreateApiKey(null, r)));
    assertNull(forever.key().expiration());
    assertEquals(
        Code.INVALID,
        code(
            this.<ApiKeyRegistry.CreatedApiKey>ask(
                r -> new Admin.CreateApiKey(Duration.ofSeconds(-5), r))));

    assertEquals(
        Set.of(created.key().prefix(), forever.key().prefix()),
        Set.copyOf(
            ok(this.<Admin.ApiKeyList>ask(Admin.ListApiKeys::new)).apiKeys().stream()
                .map(ApiKeyRegistry.ApiKey::prefix)
                .toList()));
    assertTrue(
        ok(this.<ApiKeyRegistry.ApiKey>ask(r -> new Admin.ExpireApiKey(created.key().prefix(), r)))
            .expired());
    assertEquals(
        Code.NOT_FOUND,
        code(this.<ApiKeyRegistry.ApiKey>ask(r -> new Admin.ExpireApiKey("nosuchprefix", r))));
  }

  @Test
  void stateSurvivesARestart() {
    ok(this.<User>ask(r -> new Admin.CreateUser("alice", r)));
    NodeRecord node = register("alice", "robot");
    ok(this.<NodeRecord>ask(r -> new Admin.RenameNode(node.id(), "renamed", r)));
    ok(this.<NodeRecord>ask(r -> new Admin.TagNode(node.id(), Set.of("tag:x"), r)));
    testKit.restart();
    spawn();
    Admin.NodeSummary after =
        ok(this.<Admin.NodeList>ask(r -> new Admin.ListNodes(null, r))).nodes().getFirst();
    assertEquals("renamed", after.node().hostname());
    assertEquals(Set.of("tag:x"), after.node().tags());
    assertEquals(Code.ALREADY_EXISTS, code(this.<User>ask(r -> new Admin.CreateUser("alice", r))));
  }

  /** Commands and replies may cross a cluster: every kind must survive Jackson CBOR. */
  @Test
  void protocolSerializes() {
    TestProbe<Object> probe = testKit.kit().createTestProbe();
    @SuppressWarnings({"unchecked", "rawtypes"})
    ActorRef replyTo = probe.ref();
    Instant t = Instant.parse("2025-01-02T03:04:05Z");
    var summary =
        new Admin.NodeSummary(
            new NodeRecord(
                3,
                "m",
                "n",
                "alice",
                "robot",
                "100.64.0.3",
                "fd7a:115c:a1e0::3",
                Set.of("tag:a"),
                false,
                t,
                null,
                false,
                false),
            true,
            t,
            List.of("192.0.2.1:41641"));
    @SuppressWarnings("unchecked")
    List<Object> messages =
        List.of(
            new Admin.CreateUser("alice", replyTo),
            new Admin.ListUsers(replyTo),
            new Admin.CreateAuthKey(
                "alice", true, false, Duration.ofHours(24), Set.of("tag:a"), replyTo),
            new Admin.ListNodes(null, replyTo),
            new Admin.RenameNode(3, "robot", replyTo),
            new Admin.TagNode(3, Set.of("tag:a"), replyTo),
            new Admin.CreateApiKey(null, replyTo),
            Result.ok(new Admin.UserList(List.of(new User(1, "alice", t, 2)))),
            Result.ok(
                new Admin.AuthKeyList(
                    List.of(
                        new AuthKeyRegistry.AuthKey(
                            "abcdefghijkl",
                            "alice",
                            false,
                            true,
                            t,
                            null,
                            Set.of("tag:robot"),
                            true,
                            false)))),
            Result.ok(new Admin.NodeList(List.of(summary))),
            Result.ok(
                new Admin.ApiKeyList(
                    List.of(
                        new ApiKeyRegistry.ApiKey("mnopqrstuvwx", t, t.plusSeconds(60), false)))));
    var serialization = SerializationExtension.get(testKit.kit().system().classicSystem());
    for (Object message : messages) {
      var serializer = serialization.findSerializerFor(message);
      assertEquals(
          "JacksonCborSerializer", serializer.getClass().getSimpleName(), message.toString());
      byte[] bytes = serialization.serialize(message).get();
      Object back =
          serialization
              .deserialize(
                  bytes, serializer.identifier(), Serializers.manifestFor(serializer, message))
              .get();
      assertEquals(message, back);
    }
  }
}
