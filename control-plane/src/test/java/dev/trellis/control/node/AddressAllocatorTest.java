package dev.trellis.control.node;

import static dev.trellis.control.PersistentTestKit.code;
import static dev.trellis.control.PersistentTestKit.ok;
import static dev.trellis.control.PersistentTestKit.randomKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.PersistentTestKit;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.control.node.AddressAllocator.Allocation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AddressAllocatorTest {

  @TempDir Path dataDir;
  private PersistentTestKit testKit;
  private ActorRef<AddressAllocator.Command> allocator;

  @BeforeEach
  void start() {
    testKit = new PersistentTestKit(dataDir);
    allocator = testKit.kit().spawn(AddressAllocator.create());
  }

  @AfterEach
  void stop() {
    testKit.close();
  }

  private void use(Behavior<AddressAllocator.Command> behavior) {
    testKit.kit().stop(allocator);
    allocator = testKit.kit().spawn(behavior);
  }

  private Result<Allocation> allocate(String machineKey, String hostname) {
    return testKit.ask(allocator, r -> new AddressAllocator.Allocate(machineKey, hostname, r));
  }

  private Result<Allocation> rename(long nodeId, String hostname) {
    return testKit.ask(allocator, r -> new AddressAllocator.Rename(nodeId, hostname, r));
  }

  private Result<Allocation> release(long nodeId) {
    return testKit.ask(allocator, r -> new AddressAllocator.Release(nodeId, r));
  }

  private List<Allocation> list() {
    return testKit.ask(allocator, AddressAllocator.ListAllocations::new);
  }

  @Test
  void allocatesPairedAddressesInOrder() {
    Allocation first = ok(allocate(randomKey(), "robot"));
    Allocation second = ok(allocate(randomKey(), "arm"));
    assertEquals(new Allocation(1, "100.64.0.1", "fd7a:115c:a1e0::1", "robot", false), first);
    assertEquals(new Allocation(2, "100.64.0.2", "fd7a:115c:a1e0::2", "arm", false), second);
    assertEquals(List.of(first.asExisting(), second.asExisting()), list());
  }

  @Test
  void sameMachineKeyGetsTheSameAllocation() {
    String machine = randomKey();
    Allocation first = ok(allocate(machine, "robot"));
    ok(allocate(randomKey(), "other"));
    Allocation again = ok(allocate(machine, "robot"));
    assertTrue(again.existing());
    assertEquals(first.asExisting(), again);
    assertEquals(first.asExisting(), ok(allocate(machine, null)));
    assertEquals(
        Optional.of(first.asExisting()),
        testKit.ask(
            allocator,
            (ActorRef<Optional<Allocation>> r) ->
                new AddressAllocator.FindByMachineKey(machine, r)));
    assertEquals(
        Optional.empty(),
        testKit.ask(
            allocator,
            (ActorRef<Optional<Allocation>> r) ->
                new AddressAllocator.FindByMachineKey(randomKey(), r)));
  }

  @Test
  void sanitizesAndSuffixesHostnames() {
    assertEquals("robot", ok(allocate(randomKey(), "Robot")).hostname());
    assertEquals("robot-1", ok(allocate(randomKey(), "robot")).hostname());
    assertEquals("robot-2", ok(allocate(randomKey(), "ROBOT")).hostname());
    assertEquals("my-pc", ok(allocate(randomKey(), "My_PC.")).hostname());
    assertEquals("node", ok(allocate(randomKey(), "")).hostname());
    assertEquals("node-1", ok(allocate(randomKey(), null)).hostname());
  }

  @Test
  void reallocationKeepsTheHostnameUnlessAnotherIsRequested() {
    ok(allocate(randomKey(), "robot"));
    String machine = randomKey();
    Allocation second = ok(allocate(machine, "robot"));
    assertEquals("robot-1", second.hostname());
    // Asking for "robot" again keeps "robot-1": it is already a variant of the request.
    assertEquals("robot-1", ok(allocate(machine, "robot")).hostname());
    Allocation moved = ok(allocate(machine, "kitchen"));
    assertEquals("kitchen", moved.hostname());
    assertEquals(second.nodeId(), moved.nodeId());
    assertEquals(second.ipv4(), moved.ipv4());
  }

  @Test
  void renamesOnlyToFreeValidHostnames() {
    Allocation robot = ok(allocate(randomKey(), "robot"));
    Allocation arm = ok(allocate(randomKey(), "arm"));
    Result<Allocation> taken = rename(arm.nodeId(), "robot");
    assertEquals(Code.ALREADY_EXISTS, code(taken));
    assertTrue(
        ((Result.Rejected<Allocation>) taken)
            .message()
            .contains("robot is already used by node " + robot.nodeId()));
    assertEquals(Code.INVALID, code(rename(arm.nodeId(), "bad name")));
    assertEquals(Code.INVALID, code(rename(arm.nodeId(), "-arm")));
    assertEquals(Code.NOT_FOUND, code(rename(99, "x")));
    assertEquals("gripper", ok(rename(arm.nodeId(), "Gripper")).hostname());
    assertEquals("gripper", ok(rename(arm.nodeId(), "gripper")).hostname());
    // The old name is free again.
    assertEquals("arm", ok(allocate(randomKey(), "arm")).hostname());
  }

  @Test
  void releaseFreesAddressHostnameAndMachineKey() {
    use(AddressAllocator.create("10.9.0.0/29", "fd00:9::/64")); // hosts .1 to .6
    String machine = randomKey();
    Allocation first = ok(allocate(machine, "robot"));
    List<Allocation> rest = new ArrayList<>();
    for (int i = 0; i < 5; i++) rest.add(ok(allocate(randomKey(), "robot")));
    assertEquals("10.9.0.6", rest.getLast().ipv4());
    assertEquals(Code.CONFLICT, code(allocate(randomKey(), "robot")));

    assertEquals(first.asExisting(), ok(release(first.nodeId())));
    assertEquals(Code.NOT_FOUND, code(release(first.nodeId())));
    Allocation reused = ok(allocate(machine, "robot"));
    assertEquals("10.9.0.1", reused.ipv4());
    assertEquals("fd00:9::1", reused.ipv6());
    assertEquals("robot", reused.hostname());
    assertFalse(reused.existing());
    assertEquals(7, reused.nodeId(), "node ids are never reused");
  }

  @Test
  void skipsNetworkBroadcastAndDotZeroAddresses() {
    use(AddressAllocator.create("10.1.0.0/23", "fd00:1::/64"));
    Set<String> given = new HashSet<>();
    for (int i = 0; i < 509; i++) given.add(ok(allocate(randomKey(), "n")).ipv4());
    assertEquals(509, given.size());
    assertFalse(given.contains("10.1.0.0"));
    assertFalse(given.contains("10.1.1.0"));
    assertFalse(given.contains("10.1.1.255"));
    assertTrue(given.contains("10.1.0.255"));
    assertEquals(Code.CONFLICT, code(allocate(randomKey(), "n")));
  }

  @Test
  void rejectsMalformedMachineKeys() {
    assertEquals(Code.INVALID, code(allocate("abc", "robot")));
    assertEquals(Code.INVALID, code(allocate(null, "robot")));
  }

  @Test
  void recoversAllocationsAfterRestart() {
    String machine = randomKey();
    Allocation robot = ok(allocate(machine, "robot"));
    Allocation released = ok(allocate(randomKey(), "gone"));
    ok(release(released.nodeId()));
    Allocation renamed = ok(rename(ok(allocate(randomKey(), "arm")).nodeId(), "gripper"));
    for (int i = 0; i < 105; i++) ok(allocate(randomKey(), "bulk")); // past a snapshot
    List<Allocation> before = list();

    testKit.restart();
    allocator = testKit.kit().spawn(AddressAllocator.create());
    assertTrue(PersistentTestKit.hasSnapshots(dataDir), "a snapshot was written");

    assertEquals(before, list());
    assertEquals(robot.asExisting(), ok(allocate(machine, "robot")));
    assertEquals(
        "gripper",
        list().stream()
            .filter(a -> a.nodeId() == renamed.nodeId())
            .findFirst()
            .orElseThrow()
            .hostname());
    Allocation next = ok(allocate(randomKey(), "robot"));
    assertEquals(109, next.nodeId());
    assertEquals("robot-1", next.hostname());
    assertEquals("100.64.0.109", next.ipv4());
  }
}
