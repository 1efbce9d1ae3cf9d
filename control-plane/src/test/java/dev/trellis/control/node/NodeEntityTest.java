package dev.trellis.control.node;

import static dev.trellis.control.PersistentTestKit.TIMEOUT;
import static dev.trellis.control.PersistentTestKit.code;
import static dev.trellis.control.PersistentTestKit.ok;
import static dev.trellis.control.PersistentTestKit.randomKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.PersistentTestKit;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NodeEntityTest {

  @TempDir Path dataDir;
  private PersistentTestKit testKit;
  private TestProbe<NodeEntity.Published> published;
  private ActorRef<NodeEntity.Command> node;
  private final String machine = randomKey();
  private final String nodeKey = randomKey();
  private final Instant now = Instant.now();

  @BeforeEach
  void start() {
    testKit = new PersistentTestKit(dataDir);
    published = testKit.kit().createTestProbe();
    node = testKit.kit().spawn(NodeEntity.create(5, published.ref()));
  }

  @AfterEach
  void stop() {
    testKit.close();
  }

  private Result<NodeRecord> send(
      Function<ActorRef<Result<NodeRecord>>, NodeEntity.Command> command) {
    return testKit.ask(node, command);
  }

  private Optional<NodeRecord> get() {
    return testKit.ask(node, NodeEntity.Get::new);
  }

  private Result<NodeRecord> register(
      String user, Set<String> tags, boolean ephemeral, Instant expiry) {
    return send(
        r ->
            new NodeEntity.Register(
                machine,
                nodeKey,
                user,
                "robot",
                "100.64.0.5",
                "fd7a:115c:a1e0::5",
                tags,
                ephemeral,
                expiry,
                now,
                r));
  }

  private NodeRecord changed() {
    return ((NodeEntity.NodeChanged)
            published.expectMessageClass(NodeEntity.NodeChanged.class, TIMEOUT))
        .record();
  }

  @Test
  void registersAndPublishes() {
    assertEquals(Optional.empty(), get());
    Instant expiry = now.plus(Duration.ofDays(90));
    NodeRecord record = ok(register("alice", Set.of("tag:robot"), true, expiry));
    assertEquals(
        new NodeRecord(
            5,
            machine,
            nodeKey,
            "alice",
            "robot",
            "100.64.0.5",
            "fd7a:115c:a1e0::5",
            Set.of("tag:robot"),
            true,
            now,
            expiry,
            false,
            false),
        record);
    assertEquals(record, changed());
    assertEquals(Optional.of(record), get());
    assertTrue(record.live(now));
    assertFalse(record.live(expiry));
  }

  @Test
  void everyChangeIsPersistedAndPublished() {
    ok(register("alice", Set.of(), false, null));
    changed();

    String rotated = randomKey();
    assertEquals(rotated, ok(send(r -> new NodeEntity.RotateNodeKey(rotated, r))).nodeKey());
    assertEquals(rotated, changed().nodeKey());

    assertEquals("gripper", ok(send(r -> new NodeEntity.Rename("gripper", r))).hostname());
    assertEquals("gripper", changed().hostname());

    assertEquals(
        Set.of("tag:a", "tag:b"),
        ok(send(r -> new NodeEntity.SetTags(Set.of("tag:b", "tag:a"), r))).tags());
    assertEquals(Set.of("tag:a", "tag:b"), changed().tags());

    Instant expiredAt = now.plusSeconds(5);
    NodeRecord expired = ok(send(r -> new NodeEntity.Expire(expiredAt, r)));
    assertTrue(expired.expired());
    assertEquals(expiredAt, expired.expiry());
    assertFalse(expired.live(now));
    assertEquals(expired, changed());

    NodeRecord loggedOut = ok(send(NodeEntity.Logout::new));
    assertTrue(loggedOut.loggedOut());
    assertEquals(loggedOut, changed());

    // Re-login with a new key: new user, tags and key; flags cleared; created-at kept.
    String newNodeKey = randomKey();
    NodeRecord again =
        ok(
            send(
                r ->
                    new NodeEntity.Register(
                        machine,
                        newNodeKey,
                        "bob",
                        "gripper",
                        "100.64.0.5",
                        "fd7a:115c:a1e0::5",
                        Set.of("tag:c"),
                        true,
                        null,
                        now.plusSeconds(60),
                        r)));
    assertEquals(
        new NodeRecord(
            5,
            machine,
            newNodeKey,
            "bob",
            "gripper",
            "100.64.0.5",
            "fd7a:115c:a1e0::5",
            Set.of("tag:c"),
            true,
            now,
            null,
            false,
            false),
        again);
    assertEquals(again, changed());

    // Repeating a change persists and publishes nothing.
    ok(send(r -> new NodeEntity.Rename("gripper", r)));
    ok(
        send(
            r ->
                new NodeEntity.Register(
                    machine,
                    newNodeKey,
                    "bob",
                    "gripper",
                    "100.64.0.5",
                    "fd7a:115c:a1e0::5",
                    Set.of("tag:c"),
                    true,
                    null,
                    now.plusSeconds(90),
                    r)));
    published.expectNoMessage(Duration.ofMillis(100));
  }

  @Test
  void rejectsInvalidInput() {
    assertEquals(
        Code.INVALID,
        code(
            send(
                r ->
                    new NodeEntity.Register(
                        "short",
                        nodeKey,
                        "alice",
                        "robot",
                        "100.64.0.5",
                        "fd7a:115c:a1e0::5",
                        Set.of(),
                        false,
                        null,
                        now,
                        r))));
    assertEquals(
        Code.INVALID,
        code(
            send(
                r ->
                    new NodeEntity.Register(
                        machine,
                        nodeKey + "=",
                        "alice",
                        "robot",
                        "100.64.0.5",
                        "fd7a:115c:a1e0::5",
                        Set.of(),
                        false,
                        null,
                        now,
                        r))));
    assertEquals(Code.INVALID, code(register("alice", Set.of("robot"), false, null)));
    assertEquals(Code.INVALID, code(register("", Set.of(), false, null)));
    assertEquals(Code.INVALID, code(register("alice", Set.of(), false, now.minusSeconds(1))));
    assertEquals(
        Code.INVALID,
        code(
            send(
                r ->
                    new NodeEntity.Register(
                        machine,
                        nodeKey,
                        "alice",
                        "Bad Name",
                        "100.64.0.5",
                        "fd7a:115c:a1e0::5",
                        Set.of(),
                        false,
                        null,
                        now,
                        r))));
    assertEquals(Optional.empty(), get());

    ok(register("alice", Set.of(), false, null));
    assertEquals(Code.INVALID, code(send(r -> new NodeEntity.RotateNodeKey("AAAA", r))));
    assertEquals(Code.INVALID, code(send(r -> new NodeEntity.Rename("-x-", r))));
    assertEquals(Code.INVALID, code(send(r -> new NodeEntity.SetTags(Set.of("tag:UPPER"), r))));
    assertEquals(
        Code.CONFLICT,
        code(
            send(
                r ->
                    new NodeEntity.Register(
                        randomKey(),
                        nodeKey,
                        "alice",
                        "robot",
                        "100.64.0.5",
                        "fd7a:115c:a1e0::5",
                        Set.of(),
                        false,
                        null,
                        now,
                        r))));
  }

  @Test
  void unregisteredNodeIsNotFound() {
    assertEquals(Code.NOT_FOUND, code(send(r -> new NodeEntity.RotateNodeKey(randomKey(), r))));
    assertEquals(Code.NOT_FOUND, code(send(r -> new NodeEntity.Rename("x", r))));
    assertEquals(Code.NOT_FOUND, code(send(r -> new NodeEntity.SetTags(Set.of(), r))));
    assertEquals(Code.NOT_FOUND, code(send(r -> new NodeEntity.Expire(now, r))));
    assertEquals(Code.NOT_FOUND, code(send(NodeEntity.Logout::new)));
    assertEquals(Code.NOT_FOUND, code(send(NodeEntity.Delete::new)));
  }

  @Test
  void deletedNodeRejectsEverything() {
    NodeRecord record = ok(register("alice", Set.of(), false, null));
    changed();
    assertEquals(record, ok(send(NodeEntity.Delete::new)));
    assertEquals(
        new NodeEntity.NodeRemoved(5, "alice"),
        published.expectMessageClass(NodeEntity.NodeRemoved.class, TIMEOUT));
    assertEquals(Optional.empty(), get());
    assertEquals(Code.NOT_FOUND, code(register("alice", Set.of(), false, null)));
    assertEquals(Code.NOT_FOUND, code(send(NodeEntity.Logout::new)));
    assertEquals(Code.NOT_FOUND, code(send(NodeEntity.Delete::new)));

    testKit.restart();
    node = testKit.kit().spawn(NodeEntity.create(5, published.ref()));
    assertEquals(Optional.empty(), get());
    assertEquals(Code.NOT_FOUND, code(register("alice", Set.of(), false, null)));
  }

  @Test
  void recoversAndPublishesOnceIfLive() {
    NodeRecord record = ok(register("alice", Set.of("tag:robot"), true, null));
    String rotated = randomKey();
    ok(send(r -> new NodeEntity.RotateNodeKey(rotated, r)));
    for (int i = 0; i < 101; i++) { // past a snapshot
      String tag = "tag:t" + (i % 3);
      ok(send(r -> new NodeEntity.SetTags(Set.of(tag), r)));
    }
    NodeRecord before = get().orElseThrow();
    assertEquals(record.createdAt(), before.createdAt());

    testKit.restart();
    TestProbe<NodeEntity.Published> afterRestart = testKit.kit().createTestProbe();
    node = testKit.kit().spawn(NodeEntity.create(5, afterRestart.ref()));
    assertEquals(new NodeEntity.NodeChanged(before), afterRestart.receiveMessage(TIMEOUT));
    assertEquals(Optional.of(before), get());
    afterRestart.expectNoMessage(Duration.ofMillis(100));

    ok(send(NodeEntity.Logout::new));
    afterRestart.receiveMessage(TIMEOUT);
    testKit.restart();
    TestProbe<NodeEntity.Published> loggedOut = testKit.kit().createTestProbe();
    node = testKit.kit().spawn(NodeEntity.create(5, loggedOut.ref()));
    assertTrue(get().orElseThrow().loggedOut());
    loggedOut.expectNoMessage(Duration.ofMillis(100));
  }
}
