package dev.trellis.proto.wireguard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ReplayWindowTest {

  private final ReplayWindow window = new ReplayWindow();

  @Test
  void windowIsAtLeastTwoThousandPackets() {
    assertTrue(ReplayWindow.WINDOW_SIZE >= 2048);
    assertEquals(4032, ReplayWindow.WINDOW_SIZE);
  }

  @Test
  void rejectLimitIsWireGuardsValue() {
    assertEquals(
        Long.parseUnsignedLong("18446744073709543423"), ReplayWindow.REJECT_AFTER_MESSAGES);
  }

  @Test
  void firstPacketZeroIsAccepted() {
    assertTrue(window.accept(0));
    assertFalse(window.accept(0));
  }

  @Test
  void inOrder() {
    for (long c = 0; c < 20_000; c++) {
      assertTrue(window.accept(c), "counter " + c);
    }
  }

  @Test
  void duplicatesRejected() {
    assertTrue(window.accept(5));
    assertTrue(window.accept(7));
    assertFalse(window.accept(5));
    assertFalse(window.accept(7));
    assertTrue(window.accept(6));
    assertFalse(window.accept(6));
  }

  @Test
  void reorderedWithinWindow() {
    long top = 10_000;
    assertTrue(window.accept(top));
    for (long c = top - 1; c >= top - ReplayWindow.WINDOW_SIZE; c--) {
      assertTrue(window.accept(c), "counter " + c);
    }
    for (long c = top - ReplayWindow.WINDOW_SIZE; c <= top; c++) {
      assertFalse(window.accept(c), "replayed counter " + c);
    }
  }

  @Test
  void tooOldRejected() {
    long top = 100_000;
    assertTrue(window.accept(top));
    assertFalse(window.accept(top - ReplayWindow.WINDOW_SIZE - 1));
    assertFalse(window.accept(0));
    assertTrue(window.accept(top - ReplayWindow.WINDOW_SIZE));
  }

  @Test
  void farJumpClearsOldBits() {
    for (long c = 0; c < 5000; c++) {
      assertTrue(window.accept(c));
    }
    // Land on counters that share ring slots with ones already seen.
    long jump = 5000 + 64L * 64 * 1000;
    assertTrue(window.accept(jump));
    for (long c = jump - 1; c > jump - ReplayWindow.WINDOW_SIZE; c--) {
      assertTrue(window.accept(c), "counter " + c);
    }
    // A jump smaller than the ring must clear only the words it passes over.
    long small = jump + 3 * 64;
    assertTrue(window.accept(small));
    assertFalse(window.accept(jump));
    assertFalse(window.accept(jump - 100));
    assertTrue(window.accept(small - 1));
  }

  @Test
  void rejectLimitAndBeyond() {
    long limit = ReplayWindow.REJECT_AFTER_MESSAGES;
    assertFalse(window.accept(limit));
    assertFalse(window.accept(limit + 1));
    assertFalse(window.accept(-1L)); // 2^64 - 1
    // Rejected counters must not have moved the window.
    assertTrue(window.accept(0));
    assertTrue(window.accept(limit - 1));
    assertFalse(window.accept(limit - 1));
    assertTrue(window.accept(limit - 2));
    assertFalse(window.accept(0));
  }

  @Test
  void countersAboveSignedRangeWork() {
    long base = Long.MIN_VALUE + 10; // 2^63 + 10
    assertTrue(window.accept(base));
    assertTrue(window.accept(base - 20)); // crosses 2^63 going down
    assertFalse(window.accept(base - 20));
    assertTrue(window.accept(base + 1));
    assertFalse(window.accept(5)); // far too old, not "ahead"
  }

  @Test
  void resetForgetsEverything() {
    assertTrue(window.accept(0));
    assertTrue(window.accept(1_000_000));
    window.reset();
    assertTrue(window.accept(0));
    assertTrue(window.accept(1_000_000));
  }

  @Test
  void randomPermutationsMatchReferenceModel() {
    Random random = new Random(0x5eed);
    for (int round = 0; round < 20; round++) {
      window.reset();
      int n = 30_000;
      List<Long> counters = new ArrayList<>();
      for (long c = 0; c < n; c++) {
        counters.add(c);
      }
      // Local shuffles keep most packets within the window; a few travel far.
      int spread = round % 2 == 0 ? 3000 : 6000;
      for (int i = 0; i < n; i++) {
        int j = Math.min(n - 1, i + random.nextInt(spread));
        Collections.swap(counters, i, j);
      }
      for (int i = 0; i < n / 10; i++) {
        counters.add(counters.get(random.nextInt(n))); // duplicates
      }
      for (int i = 0; i < 50; i++) {
        counters.add(n / 2, (long) n + random.nextInt(100_000)); // jumps ahead
      }
      Reference model = new Reference();
      for (long c : counters) {
        assertEquals(model.accept(c), window.accept(c), "round " + round + " counter " + c);
      }
    }
  }

  /** Obviously-correct filter: exact set plus the window bound relative to the maximum. */
  private static final class Reference {
    private final Set<Long> seen = new HashSet<>();
    private long max;

    boolean accept(long counter) {
      if (Long.compareUnsigned(counter, ReplayWindow.REJECT_AFTER_MESSAGES) >= 0) {
        return false;
      }
      if (counter < max && max - counter > ReplayWindow.WINDOW_SIZE) {
        return false;
      }
      if (!seen.add(counter)) {
        return false;
      }
      max = Math.max(max, counter);
      return true;
    }
  }
}
