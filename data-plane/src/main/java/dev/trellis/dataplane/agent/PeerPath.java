package dev.trellis.dataplane.agent;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * One peer's path, and the only place that decides it (compare tailscale's magicsock {@code
 * endpoint.go}): direct UDP to an address that answered a disco ping, or the relay. Every peer
 * starts on the relay; a pong received directly moves it to that address, and when pongs stop for
 * {@link AgentTiming#DIRECT_TIMEOUT} it falls back to the relay while probing goes on.
 *
 * <p>Threads: every method but {@link #direct()} and {@link #status()} runs on the {@link
 * PeerPaths} thread. The packet path reads {@link #direct()} (a volatile) for each message.
 */
final class PeerPath {
  /** Where a peer's traffic goes now; {@code lastRttNanos} -1 before the first pong. */
  record Status(boolean direct, InetSocketAddress endpoint, long lastRttNanos) {}

  /** A ping waiting for its pong; {@code waiter} is set for `trellis ping`. */
  record Pending(
      InetSocketAddress to, long sentNanos, CompletableFuture<PeerPaths.PingResult> waiter) {}

  /** What {@link #onPong} changed. */
  enum Change {
    NONE,
    NOW_DIRECT
  }

  final byte[] key;
  final byte[] sharedKey;

  /** The peer's hostname from the map, for log lines. */
  volatile String name;

  private List<InetSocketAddress> candidates = List.of();
  private volatile InetSocketAddress direct;
  private volatile long lastRttNanos = -1;
  private long lastDirectPong;
  private long lastProbe = Long.MIN_VALUE / 2;
  private long lastCallMeMaybe = Long.MIN_VALUE / 2;
  final Map<String, Pending> pending = new HashMap<>();

  PeerPath(byte[] key, byte[] sharedKey, String name) {
    this.key = key;
    this.sharedKey = sharedKey;
    this.name = name;
  }

  /** The direct address in use, or null: the relay. Read on the packet path. */
  InetSocketAddress direct() {
    return direct;
  }

  Status status() {
    InetSocketAddress d = direct;
    return new Status(d != null, d, lastRttNanos);
  }

  void setCandidates(List<InetSocketAddress> endpoints) {
    candidates = List.copyOf(endpoints);
  }

  /**
   * A pong to one of our pings: from {@code source} directly, or through the relay (null).
   *
   * @param endpointSet whether the device now sends to {@code source}; the path turns direct only
   *     then, so packets never go to an address the device does not have
   */
  Change onPong(InetSocketAddress source, long rttNanos, long now, boolean endpointSet) {
    lastRttNanos = rttNanos;
    if (source == null || !endpointSet) {
      return Change.NONE;
    }
    lastDirectPong = now;
    if (source.equals(direct)) {
      return Change.NONE;
    }
    direct = source;
    return Change.NOW_DIRECT;
  }

  /** Whether a pong from {@code source} would move the path (a new direct address). */
  boolean wouldMoveTo(InetSocketAddress source) {
    return source != null && !source.equals(direct);
  }

  /** Drops the direct path when pongs stopped; returns the address given up, or null. */
  InetSocketAddress expireDirect(long now) {
    InetSocketAddress d = direct;
    if (d != null && now - lastDirectPong > AgentTiming.DIRECT_TIMEOUT.toNanos()) {
      direct = null;
      return d;
    }
    return null;
  }

  /** The addresses to probe now (the map's candidates and the direct one), empty when not due. */
  List<InetSocketAddress> probesDue(long now) {
    pending.values().removeIf(x -> now - x.sentNanos() > AgentTiming.PROBE_FORGET_AFTER.toNanos());
    InetSocketAddress d = direct;
    long interval =
        (d != null ? AgentTiming.PROBE_INTERVAL_DIRECT : AgentTiming.PROBE_INTERVAL_NO_PATH)
            .toNanos();
    if (now - lastProbe < interval) {
      return List.of();
    }
    lastProbe = now;
    List<InetSocketAddress> targets = new ArrayList<>(candidates);
    if (d != null && !targets.contains(d)) {
      targets.add(d);
    }
    return targets;
  }

  /**
   * Whether to ask the peer (through the relay) to probe us back now: only while there is no direct
   * path.
   */
  boolean callMeMaybeDue(long now) {
    if (direct != null || now - lastCallMeMaybe < AgentTiming.CALL_ME_MAYBE_INTERVAL.toNanos()) {
      return false;
    }
    lastCallMeMaybe = now;
    return true;
  }
}
