package dev.trellis.control.multicast;

import com.typesafe.config.Config;
import dev.trellis.proto.control.ControlMessage;

/**
 * {@code trellis.multicast}: whether nodes may carry multicast over the overlay (each node still
 * opts in with {@code trellis up --multicast}), and how much one node may send into it per second.
 * Nodes get it in their map.
 */
public final class MulticastSettings {
  /** Enough for DDS discovery and a few multicast topics; a flood stops here. */
  static final int MAX_PACKETS_PER_SECOND = 1_000_000;

  static final int MAX_BYTES_PER_SECOND = 1_000_000_000;

  private MulticastSettings() {}

  /** The multicast part of the map, or null when {@code trellis.multicast.enabled = false}. */
  public static ControlMessage.MulticastInfo from(Config trellis) {
    Config m = trellis.getConfig("multicast");
    if (!m.getBoolean("enabled")) return null;
    int packets = bounded(m, "packets-per-second", MAX_PACKETS_PER_SECOND);
    long bytes = m.getBytes("bytes-per-second");
    if (bytes < 1 || bytes > MAX_BYTES_PER_SECOND) {
      throw new IllegalArgumentException(
          "trellis.multicast.bytes-per-second must be between 1 and "
              + MAX_BYTES_PER_SECOND
              + ", not "
              + bytes);
    }
    return new ControlMessage.MulticastInfo(packets, (int) bytes);
  }

  private static int bounded(Config m, String key, int max) {
    int v = m.getInt(key);
    if (v < 1 || v > max) {
      throw new IllegalArgumentException(
          "trellis.multicast." + key + " must be between 1 and " + max + ", not " + v);
    }
    return v;
  }
}
