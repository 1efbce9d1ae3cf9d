package dev.trellis.dataplane.multicast;

/**
 * Two token buckets, datagrams and bytes, each refilled at its rate per second and holding at most
 * one second's worth: a burst of a second passes, a flood is cut to the rate.
 *
 * <p>Threads: one thread (the outbound packet thread) calls {@link #take}; not thread-safe.
 */
final class RateLimit {
  private static final long NANOS_PER_SECOND = 1_000_000_000L;

  private final long packetsPerSecond;
  private final long bytesPerSecond;
  private double packets;
  private double bytes;
  private long refilledAt;

  RateLimit(long packetsPerSecond, long bytesPerSecond, long now) {
    this.packetsPerSecond = packetsPerSecond;
    this.bytesPerSecond = bytesPerSecond;
    this.packets = packetsPerSecond;
    this.bytes = bytesPerSecond;
    this.refilledAt = now;
  }

  /**
   * Takes one datagram of {@code size} bytes at {@code now} (nanoseconds); false: over the rate.
   */
  boolean take(int size, long now) {
    long elapsed = now - refilledAt;
    if (elapsed > 0) {
      double seconds = (double) elapsed / NANOS_PER_SECOND;
      packets = Math.min(packetsPerSecond, packets + seconds * packetsPerSecond);
      bytes = Math.min(bytesPerSecond, bytes + seconds * bytesPerSecond);
      refilledAt = now;
    }
    if (packets < 1 || bytes < size) {
      return false;
    }
    packets -= 1;
    bytes -= size;
    return true;
  }

  long packetsPerSecond() {
    return packetsPerSecond;
  }

  long bytesPerSecond() {
    return bytesPerSecond;
  }
}
