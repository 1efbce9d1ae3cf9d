package dev.trellis.proto.wireguard;

import java.util.Arrays;

/**
 * Sliding-window anti-replay filter for transport data counters (RFC 6479).
 *
 * <p>The bitmap is a ring of 64-bit words. Advancing the window only clears the words it moves
 * into, so a large jump costs at most one pass over the ring and there is no bit shifting. One word
 * of the ring is always partially ahead of the window, which is why the usable window is one word
 * smaller than the ring.
 *
 * <p>Counters are unsigned 64-bit values carried in a {@code long}.
 *
 * <p>Not thread-safe: each keypair has one receive thread, which is the only caller.
 */
public final class ReplayWindow {

  /**
   * Counters at or above this (unsigned) are rejected; the sender must rekey before reaching it.
   * WireGuard's REJECT_AFTER_MESSAGES = 2^64 - 2^13 - 1.
   */
  public static final long REJECT_AFTER_MESSAGES = -(1L << 13) - 1;

  private static final int BITS_PER_WORD_LOG = 6;
  private static final int BITS_PER_WORD = 1 << BITS_PER_WORD_LOG;
  private static final int BIT_MASK = BITS_PER_WORD - 1;
  private static final int RING_WORDS_LOG = 6;
  private static final int RING_WORDS = 1 << RING_WORDS_LOG;
  private static final int WORD_MASK = RING_WORDS - 1;

  /** How far (in counters) below the highest accepted counter a packet may still arrive. */
  public static final int WINDOW_SIZE = (RING_WORDS - 1) * BITS_PER_WORD;

  private final long[] ring = new long[RING_WORDS];
  // Highest counter accepted so far; 0 initially, so the first packet (counter 0) is fresh.
  private long last;

  /**
   * Returns true if {@code counter} is fresh: below {@link #REJECT_AFTER_MESSAGES}, not older than
   * the window, and not seen before. A fresh counter is marked as seen.
   *
   * <p>Call only after the packet authenticated, or a forged counter could slide the window forward
   * and make genuine packets look stale.
   */
  public boolean accept(long counter) {
    if (Long.compareUnsigned(counter, REJECT_AFTER_MESSAGES) >= 0) {
      return false;
    }
    long word = counter >>> BITS_PER_WORD_LOG;
    if (Long.compareUnsigned(counter, last) > 0) {
      long current = last >>> BITS_PER_WORD_LOG;
      long advance = word - current;
      if (Long.compareUnsigned(advance, RING_WORDS) > 0) {
        advance = RING_WORDS; // every word is stale; clearing each once is enough
      }
      for (long i = 1; i <= advance; i++) {
        ring[(int) ((current + i) & WORD_MASK)] = 0;
      }
      last = counter;
    } else if (Long.compareUnsigned(last - counter, WINDOW_SIZE) > 0) {
      return false;
    }
    int index = (int) (word & WORD_MASK);
    long bit = 1L << (counter & BIT_MASK);
    long old = ring[index];
    ring[index] = old | bit;
    return (old & bit) == 0;
  }

  /** Forgets every counter, e.g. when the keypair is replaced. */
  public void reset() {
    last = 0;
    Arrays.fill(ring, 0);
  }
}
