package dev.trellis.dataplane.filter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The outbound UDP flow table: matching, expiry, its bound, and lookups during updates. */
class FlowTableTest {
  private static final long SECOND = TimeUnit.SECONDS.toNanos(1);

  private final AtomicLong clock = new AtomicLong(42 * SECOND);

  @Test
  void aFlowMatchesOnlyItsAddressFamilyAndPorts() {
    FlowTable t = new FlowTable(64, Duration.ofSeconds(120), clock::get);
    long v4 = 0x64400003L; // 100.64.0.3
    t.record(false, 0, v4, 53, 40000);
    assertTrue(t.isReply(false, 0, v4, 53, 40000));
    assertFalse(t.isReply(true, 0, v4, 53, 40000), "::100.64.0.3 is another address");
    assertFalse(t.isReply(false, 0, v4 + 1, 53, 40000));
    assertFalse(t.isReply(false, 0, v4, 40000, 53));
    long hi = 0xfd7a115ca1e00000L;
    t.record(true, hi, 3, 123, 50000);
    assertTrue(t.isReply(true, hi, 3, 123, 50000));
    assertFalse(t.isReply(true, hi + 1, 3, 123, 50000));
    assertEquals(2, t.size());
  }

  @Test
  void idleFlowsExpireAndUsedOnesStay() {
    FlowTable t = new FlowTable(64, Duration.ofSeconds(120), clock::get);
    t.record(false, 0, 1, 53, 1000);
    t.record(false, 0, 2, 53, 1000);
    clock.addAndGet(60 * SECOND);
    t.record(false, 0, 2, 53, 1000);
    clock.addAndGet(60 * SECOND);
    assertFalse(t.isReply(false, 0, 1, 53, 1000), "idle for exactly the idle time");
    assertTrue(t.isReply(false, 0, 2, 53, 1000));
    assertEquals(1, t.size());
    // A use within REFRESH_NANOS of the last refresh is not written: expiry is accurate to that.
    clock.addAndGet(FlowTable.REFRESH_NANOS / 2);
    t.record(false, 0, 2, 53, 1000);
    clock.addAndGet(FlowTable.REFRESH_NANOS / 2);
    t.record(false, 0, 2, 53, 1000);
    clock.addAndGet(120 * SECOND - FlowTable.REFRESH_NANOS / 2);
    assertFalse(t.isReply(false, 0, 2, 53, 1000));
  }

  @Test
  void aFullBucketEvictsTheFlowIdleLongest() {
    FlowTable t = new FlowTable(FlowTable.WAYS, Duration.ofSeconds(120), clock::get);
    assertEquals(FlowTable.WAYS, t.capacity());
    for (int i = 0; i < FlowTable.WAYS; i++) {
      t.record(false, 0, i, 53, 1000);
      clock.addAndGet(2 * SECOND);
    }
    t.record(false, 0, 0, 53, 1000); // the first flow is used again: the second is now the oldest
    clock.addAndGet(2 * SECOND);
    t.record(false, 0, 99, 53, 1000);
    assertEquals(FlowTable.WAYS, t.size());
    assertTrue(t.isReply(false, 0, 99, 53, 1000));
    assertTrue(t.isReply(false, 0, 0, 53, 1000));
    assertFalse(t.isReply(false, 0, 1, 53, 1000));
    for (int i = 2; i < FlowTable.WAYS; i++) {
      assertTrue(t.isReply(false, 0, i, 53, 1000));
    }
  }

  @Test
  void theTableNeverHoldsMoreThanItsCapacity() {
    FlowTable t = new FlowTable(1000, Duration.ofSeconds(120), clock::get);
    assertEquals(1024, t.capacity());
    for (int i = 0; i < 10_000; i++) {
      t.record(false, 0, i, 53, 1000 + (i & 0xff));
    }
    assertTrue(t.size() <= 1024);
    assertTrue(t.isReply(false, 0, 9_999, 53, 1000 + (9_999 & 0xff)), "the newest flow is there");
  }

  /**
   * Lookups racing slot replacements never see a flow that was not recorded (a slot's address
   * halves and ports from different flows): the optimistic read is validated.
   */
  @Test
  @Timeout(30)
  void lookupsDuringReplacementsNeverMatchATornSlot() throws Exception {
    FlowTable t = new FlowTable(FlowTable.WAYS * 4, Duration.ofSeconds(120), System::nanoTime);
    AtomicBoolean stop = new AtomicBoolean();
    Thread writer =
        Thread.ofPlatform()
            .start(
                () -> {
                  for (long i = 0; !stop.get(); i++) {
                    t.record(true, i, i, (int) (i & 0xffff), (int) (i & 0xffff));
                  }
                });
    long falseMatches = 0;
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(300);
    for (long i = 0; System.nanoTime() < deadline; i++) {
      int port = (int) (i & 0xffff);
      // Never recorded: low half of the next flow with the high half and ports of this one.
      if (t.isReply(true, i, i + 1, port, port)) {
        falseMatches++;
      }
      t.isReply(true, i, i, port, port);
    }
    stop.set(true);
    writer.join();
    assertEquals(0, falseMatches);
  }
}
