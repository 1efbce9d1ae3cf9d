package dev.trellis.control.map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.map.NetworkMap.SendEncoded;
import dev.trellis.control.map.NetworkMap.SessionOutput;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;

class DeltaBatcherTest {
  private final AtomicInteger scheduled = new AtomicInteger();
  private final DeltaBatcher batcher = new DeltaBatcher(scheduled::incrementAndGet);

  @Test
  void oneFlushIsScheduledPerBatch() {
    batcher.changed(1);
    batcher.changed(2);
    batcher.removed(3);
    assertEquals(1, scheduled.get());
    batcher.drain(id -> true);
    batcher.changed(1);
    assertEquals(2, scheduled.get());
  }

  @Test
  void theLastMarkOfANodeWinsAndOrderIsKept() {
    batcher.changed(3);
    batcher.changed(1);
    batcher.changed(2);
    batcher.removed(1);
    batcher.removed(4);
    batcher.changed(4);
    assertEquals(
        new DeltaBatcher.Batch(List.of(3L, 2L, 4L), List.of(1L)), batcher.drain(id -> true));
    batcher.removed(2);
    assertEquals(new DeltaBatcher.Batch(List.of(), List.of(2L)), batcher.drain(id -> true));
    assertTrue(batcher.drain(id -> true).isEmpty(), "drained");
  }

  @Test
  void changedNodesThatAreNoLongerLiveAreLeftOut() {
    batcher.changed(1);
    batcher.changed(2);
    assertEquals(new DeltaBatcher.Batch(List.of(2L), List.of()), batcher.drain(id -> id == 2));
  }

  @Test
  void visibleUntilRemoved() {
    assertFalse(batcher.visible(1));
    batcher.changed(1);
    batcher.drain(id -> true);
    assertTrue(batcher.visible(1));
    batcher.removed(1);
    assertFalse(batcher.visible(1));
  }

  /**
   * Sessions of unchanged nodes share one encoding; a changed node with a session gets its own, as
   * "self".
   */
  @Test
  void flushSendsOneSharedDeltaAndOwnCopiesToChangedNodes() throws Exception {
    ActorTestKit kit = ActorTestKit.create("delta-batcher");
    try {
      Instant now = Instant.parse("2025-03-04T05:06:07Z");
      NodeIndex nodes = new NodeIndex(Clock.fixed(now, ZoneOffset.UTC));
      for (long id = 1; id <= 3; id++) {
        nodes.put(
            new NodeRecord(
                id,
                "m",
                "k" + id,
                "alice",
                "h" + id,
                "100.64.0." + id,
                null,
                Set.of(),
                false,
                now,
                null,
                false,
                false));
      }
      MapEncoder encoder = new MapEncoder(nodes, new PresenceTable("here"));
      Map<Long, TestProbe<SessionOutput>> probes = new LinkedHashMap<>();
      Map<Long, ActorRef<SessionOutput>> sessions = new LinkedHashMap<>();
      for (long id = 1; id <= 3; id++) {
        probes.put(id, kit.createTestProbe());
        sessions.put(id, probes.get(id).getRef());
      }
      batcher.changed(1);
      batcher.removed(9);
      batcher.flush(nodes::isLive, encoder, sessions);
      byte[] own = ((SendEncoded) probes.get(1L).receiveMessage()).json();
      byte[] two = ((SendEncoded) probes.get(2L).receiveMessage()).json();
      byte[] three = ((SendEncoded) probes.get(3L).receiveMessage()).json();
      assertSame(two, three, "encoded once for every session it is the same for");
      assertNotSame(own, two);
      var shared = (ControlMessage.MapDelta) ControlJson.decode(two);
      assertNull(shared.self());
      assertEquals(
          List.of(1L), shared.upserted().stream().map(ControlMessage.NodeInfo::id).toList());
      assertEquals(List.of(9L), shared.removed());
      var self = (ControlMessage.MapDelta) ControlJson.decode(own);
      assertEquals(1L, self.self().id());
      assertEquals(List.of(), self.upserted());
      assertEquals(List.of(9L), self.removed());

      batcher.flush(nodes::isLive, encoder, sessions);
      probes.values().forEach(p -> p.expectNoMessage(Duration.ofMillis(50)));
    } finally {
      kit.shutdownTestKit();
    }
  }
}
