package dev.trellis.proto.wireguard;

import java.time.Instant;
import java.util.Arrays;

/**
 * TAI64N timestamps as carried in handshake initiations: 8 bytes big-endian label (2^62 + 10 + Unix
 * seconds) followed by 4 bytes big-endian nanoseconds.
 *
 * <p>The responder keeps the greatest timestamp seen per peer and drops initiations that are not
 * strictly after it, which defeats replay of captured initiations.
 */
public final class Tai64n {

  /** Encoded length in bytes. */
  public static final int SIZE = 12;

  // TAI64 label of the Unix epoch: 2^62 plus the 10 s TAI-UTC offset of 1970.
  private static final long EPOCH_LABEL = (1L << 62) + 10;

  /**
   * Nanoseconds are rounded down to a multiple of this, so the timestamp does not give away
   * fine-grained clock readings (wireguard's whitening, 2^24 ns ~ 16.8 ms).
   */
  public static final int WHITENING_NANOS = 1 << 24;

  private Tai64n() {}

  /** Timestamp for the current wall-clock time. */
  public static byte[] now() {
    return of(Instant.now());
  }

  /** Timestamp for {@code instant}, with whitened nanoseconds. */
  public static byte[] of(Instant instant) {
    long seconds = EPOCH_LABEL + instant.getEpochSecond();
    int nanos = instant.getNano() & -WHITENING_NANOS;
    byte[] out = new byte[SIZE];
    for (int i = 0; i < 8; i++) {
      out[i] = (byte) (seconds >>> (56 - 8 * i));
    }
    for (int i = 0; i < 4; i++) {
      out[8 + i] = (byte) (nanos >>> (24 - 8 * i));
    }
    return out;
  }

  /**
   * Orders timestamps by time. Byte-wise unsigned comparison is exact because both fields are
   * big-endian and fixed-width.
   */
  public static int compare(byte[] a, byte[] b) {
    checkSize(a);
    checkSize(b);
    return Arrays.compareUnsigned(a, b);
  }

  /** True if {@code a} is strictly later than {@code b}. */
  public static boolean isAfter(byte[] a, byte[] b) {
    return compare(a, b) > 0;
  }

  private static void checkSize(byte[] stamp) {
    if (stamp.length != SIZE) {
      throw new IllegalArgumentException(
          "TAI64N timestamp must be " + SIZE + " bytes, got " + stamp.length);
    }
  }
}
