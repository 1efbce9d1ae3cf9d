package dev.trellis.control.user;

import static dev.trellis.control.PersistentTestKit.code;
import static dev.trellis.control.PersistentTestKit.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.PersistentTestKit;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class UserRegistryTest {

  @TempDir Path dataDir;
  private PersistentTestKit testKit;
  private ActorRef<UserRegistry.Command> users;

  @BeforeEach
  void start() {
    testKit = new PersistentTestKit(dataDir);
    users = testKit.kit().spawn(UserRegistry.create());
  }

  @AfterEach
  void stop() {
    testKit.close();
  }

  private Result<User> create(String name) {
    return testKit.ask(users, r -> new UserRegistry.CreateUser(name, r));
  }

  private Optional<User> get(String name) {
    return testKit.ask(users, r -> new UserRegistry.GetUser(name, r));
  }

  @Test
  void createsGetsAndListsUsers() {
    User alice = ok(create("alice"));
    User bob = ok(create("bob@example.com"));
    assertEquals(1, alice.id());
    assertEquals(2, bob.id());
    assertEquals("alice", alice.name());
    assertEquals(0, alice.nodeCount());
    assertEquals(Optional.of(alice), get("alice"));
    assertEquals(Optional.empty(), get("carol"));
    assertEquals(List.of(alice, bob), testKit.ask(users, UserRegistry.ListUsers::new));
  }

  @Test
  void rejectsDuplicatesAndInvalidNames() {
    ok(create("alice"));
    assertEquals(Code.ALREADY_EXISTS, code(create("alice")));
    for (String bad :
        new String[] {"", "Alice", "-alice", ".a", "a b", "a/b", "x".repeat(64), null}) {
      assertEquals(Code.INVALID, code(create(bad)), "name " + bad);
    }
    for (String good : new String[] {"a", "0", "ops.team_1@site-b", "x".repeat(63)}) {
      ok(create(good));
    }
  }

  @Test
  void countsAttachedNodesIdempotently() {
    ok(create("alice"));
    users.tell(new UserRegistry.AttachNode("alice", 1, testKit.kit().system().ignoreRef()));
    users.tell(new UserRegistry.AttachNode("alice", 1, testKit.kit().system().ignoreRef()));
    users.tell(new UserRegistry.AttachNode("alice", 2, testKit.kit().system().ignoreRef()));
    users.tell(new UserRegistry.AttachNode("nobody", 3, testKit.kit().system().ignoreRef()));
    assertEquals(2, get("alice").orElseThrow().nodeCount());
    users.tell(new UserRegistry.DetachNode("alice", 2, testKit.kit().system().ignoreRef()));
    users.tell(new UserRegistry.DetachNode("alice", 2, testKit.kit().system().ignoreRef()));
    users.tell(new UserRegistry.DetachNode("alice", 9, testKit.kit().system().ignoreRef()));
    assertEquals(1, get("alice").orElseThrow().nodeCount());
  }

  @Test
  void deletesOnlyUsersWithoutNodes() {
    ok(create("alice"));
    assertEquals(
        Code.NOT_FOUND,
        code(
            testKit.ask(
                users, (ActorRef<Result<User>> r) -> new UserRegistry.DeleteUser("bob", r))));

    users.tell(new UserRegistry.AttachNode("alice", 1, testKit.kit().system().ignoreRef()));
    users.tell(new UserRegistry.AttachNode("alice", 2, testKit.kit().system().ignoreRef()));
    Result<User> refused =
        testKit.ask(users, (ActorRef<Result<User>> r) -> new UserRegistry.DeleteUser("alice", r));
    assertEquals(Code.CONFLICT, code(refused));
    assertTrue(((Result.Rejected<User>) refused).message().contains("2 nodes"), refused.toString());

    users.tell(new UserRegistry.DetachNode("alice", 1, testKit.kit().system().ignoreRef()));
    users.tell(new UserRegistry.DetachNode("alice", 2, testKit.kit().system().ignoreRef()));
    assertEquals(
        "alice",
        ok(testKit.ask(
                users, (ActorRef<Result<User>> r) -> new UserRegistry.DeleteUser("alice", r)))
            .name());
    assertFalse(get("alice").isPresent());
    // Ids are not reused after a delete.
    assertEquals(2, ok(create("alice")).id());
  }

  @Test
  void recoversUsersAndNodesAfterRestart() {
    User alice = ok(create("alice"));
    ok(create("bob"));
    users.tell(new UserRegistry.AttachNode("alice", 7, testKit.kit().system().ignoreRef()));
    ok(testKit.ask(users, (ActorRef<Result<User>> r) -> new UserRegistry.DeleteUser("bob", r)));
    // Past one snapshot interval, so recovery reads a snapshot and then events.
    for (int i = 0; i < 110; i++) ok(create("user-" + i));

    testKit.restart();
    users = testKit.kit().spawn(UserRegistry.create());
    assertTrue(PersistentTestKit.hasSnapshots(dataDir), "a snapshot was written");

    assertEquals(alice.createdAt(), get("alice").orElseThrow().createdAt());
    assertEquals(1, get("alice").orElseThrow().nodeCount());
    assertEquals(Optional.empty(), get("bob"));
    assertEquals(111, testKit.ask(users, UserRegistry.ListUsers::new).size());
    assertEquals(
        Code.CONFLICT,
        code(
            testKit.ask(
                users, (ActorRef<Result<User>> r) -> new UserRegistry.DeleteUser("alice", r))));
    assertEquals(113, ok(create("carol")).id());
  }
}
