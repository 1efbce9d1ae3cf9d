package dev.trellis.control.node;

import static dev.trellis.control.PersistentTestKit.TIMEOUT;
import static dev.trellis.control.PersistentTestKit.code;
import static dev.trellis.control.PersistentTestKit.ok;
import static dev.trellis.control.PersistentTestKit.randomKey;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.trellis.control.PersistentTestKit;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NodeDirectoryTest {

  @TempDir Path dataDir;
  private PersistentTestKit testKit;
  private TestProbe<NodeEntity.Published> published;
  private ActorRef<NodeDirectory.Command> directory;

  @BeforeEach
  void start() {
    testKit = new PersistentTestKit(dataDir);
    published = testKit.kit().createTestProbe();
    directory =
        testKit
            .kit()
            .spawn(NodeDirectory.create(testKit.kit().system(), published.ref(), published.ref()));
  }

  @AfterEach
  void stop() {
    testKit.close();
  }

  private Result<NodeRecord> register(long id, String user) {
    return testKit.ask(
        directory,
        (ActorRef<Result<NodeRecord>> r) ->
            new NodeDirectory.Forward(
                id,
                new NodeEntity.Register(
                    randomKey(),
                    randomKey(),
                    user,
                    "node-" + id,
                    "100.64.0." + id,
                    "fd7a:115c:a1e0::" + id,
                    Set.of(),
                    false,
                    null,
                    Instant.now(),
                    r)));
  }

  private Optional<NodeRecord> get(long id) {
    return testKit.ask(
        directory,
        (ActorRef<Optional<NodeRecord>> r) -> new NodeDirectory.Forward(id, new NodeEntity.Get(r)));
  }

  @Test
  void forwardsToOneEntityPerNode() {
    NodeRecord one = ok(register(1, "alice"));
    NodeRecord two = ok(register(2, "bob"));
    assertEquals(
        Set.of(one, two),
        Set.of(
            ((NodeEntity.NodeChanged) published.receiveMessage(TIMEOUT)).record(),
            ((NodeEntity.NodeChanged) published.receiveMessage(TIMEOUT)).record()));
    assertEquals(Optional.of(one), get(1));
    assertEquals(Optional.of(two), get(2));
    assertEquals(Optional.empty(), get(3));
  }

  @Test
  void spawnAllRecoversLiveNodesAndPublishesThem() {
    NodeRecord one = ok(register(1, "alice"));
    NodeRecord two = ok(register(2, "bob"));
    ok(register(3, "carol"));
    ok(
        testKit.ask(
            directory,
            (ActorRef<Result<NodeRecord>> r) ->
                new NodeDirectory.Forward(3, new NodeEntity.Logout(r))));

    testKit.restart();
    TestProbe<NodeEntity.Published> afterRestart = testKit.kit().createTestProbe();
    directory =
        testKit
            .kit()
            .spawn(
                NodeDirectory.create(
                    testKit.kit().system(), afterRestart.ref(), afterRestart.ref()));
    directory.tell(new NodeDirectory.SpawnAll(List.of(1L, 2L, 3L, 4L)));

    Set<NodeRecord> recovered = new HashSet<>();
    while (recovered.size() < 2)
      recovered.add(((NodeEntity.NodeChanged) afterRestart.receiveMessage(TIMEOUT)).record());
    assertEquals(Set.of(one, two), recovered);
    // A recovering entity publishes and also answers the Announce: duplicates are fine, but never
    // the
    // logged-out node 3 nor the never-registered node 4.
    List<NodeEntity.Published> rest = new ArrayList<>();
    try {
      while (true) rest.add(afterRestart.receiveMessage(Duration.ofMillis(300)));
    } catch (AssertionError quiet) {
      // nothing more within 300 ms
    }
    for (NodeEntity.Published p : rest) {
      assertEquals(
          true,
          p instanceof NodeEntity.NodeChanged c && Set.of(one, two).contains(c.record()),
          "unexpected " + p);
    }
  }

  @Test
  void deleteStopsTheEntityWithoutLosingQueuedCommands() {
    ok(register(1, "alice"));
    published.receiveMessage(TIMEOUT);

    TestProbe<Result<NodeRecord>> deleted = testKit.kit().createTestProbe();
    TestProbe<Result<NodeRecord>> logouts = testKit.kit().createTestProbe();
    directory.tell(new NodeDirectory.Forward(1, new NodeEntity.Delete(deleted.ref())));
    // Sent while the delete is being persisted and while the entity is stopping: all answered.
    for (int i = 0; i < 20; i++)
      directory.tell(new NodeDirectory.Forward(1, new NodeEntity.Logout(logouts.ref())));
    ok(deleted.receiveMessage(TIMEOUT));
    assertEquals(new NodeEntity.NodeRemoved(1, "alice"), published.receiveMessage(TIMEOUT));
    for (int i = 0; i < 20; i++)
      assertEquals(Code.NOT_FOUND, code(logouts.receiveMessage(TIMEOUT)));
    for (int i = 0; i < 20; i++) {
      directory.tell(new NodeDirectory.Forward(1, new NodeEntity.Logout(logouts.ref())));
      assertEquals(Code.NOT_FOUND, code(logouts.receiveMessage(TIMEOUT)));
    }
    assertEquals(Optional.empty(), get(1));
    published.expectNoMessage(Duration.ofMillis(100));
  }
}
