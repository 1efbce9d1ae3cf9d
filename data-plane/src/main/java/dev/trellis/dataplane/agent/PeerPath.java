package dev.trellis.dataplane.agent;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One peer's path, and the only place that decides it (compare tailscale's magicsock {@code
 * endpoint.go}): direct UDP to an address that answered a disco ping, or the relay. Every peer
 * starts on the relay; a pong received directly moves it to that address, and when pongs stop for
 * {@link AgentTiming#DIRECT_TIMEOUT} it falls back to the relay while probing goes on. A peer this
 * node has sent nothing to for {@link AgentTiming#QUIET_AFTER} is quiet: its direct path is probed
 * and timed out at the quiet pace, so an idle robot with many peers stays idle.
 *
 * <p>Threads: every method but {@link #direct()}, {@link #status()} and {@link #dataSent()} runs on
 * the {@link PeerPaths} thread. The packet path reads {@link #direct()} (a volatile) and marks
 * {@link #sentData} for each message.
 */
final class PeerPath {
  /**
   * Where a peer's traffic goes now; {@code lastRttNanos} -1 before the first pong; {@code quality}
   * that of the path in use.
   */
  record Status(
      boolean direct,
      InetSocketAddress endpoint,
      long lastRttNanos,
      PathQuality.Snapshot quality,
      boolean active) {}

  /**
   * A ping waiting for its pong; {@code kind} which path it measures; {@code waiter} is set for
   * `trellis ping`.
   */
  record Pending(
      InetSocketAddress to,
      long sentNanos,
      PathQuality.Kind kind,
      CompletableFuture<PeerPaths.PingResult> waiter) {}

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
  private long lastRelayQuality = Long.MIN_VALUE / 2;
  final PathQuality quality = new PathQuality();

  /** Set by the packet path when data goes to the peer; taken by {@link #noteActivity}. */
  private final AtomicBoolean sentData = new AtomicBoolean();

  /** When the tick last saw data sent, and when the peer last turned active (paths thread). */
  private volatile long lastActive = Long.MIN_VALUE / 2;

  private long activeSince = Long.MIN_VALUE / 2;
  final Map<String, Pending> pending = new HashMap<>();

  PeerPath(byte[] key, byte[] sharedKey, String name) {
    this.key = key;
    this.sharedKey = sharedKey;
    this.name = name;
  }

  /**
   * The packet path sent the peer a data message. Cheap on the hot path: a read, and a write only
   * the first time between two ticks.
   */
  void dataSent() {
    if (!sentData.getPlain()) {
      sentData.setRelease(true);
    }
  }

  /**
   * Takes what the packet path marked since the last tick.
   *
   * @return true when the peer was quiet and is active again (probe it now)
   */
  boolean noteActivity(long now) {
    if (!sentData.getAcquire()) {
      return false;
    }
    sentData.setRelease(false);
    boolean wasQuiet = quiet(now);
    lastActive = now;
    if (wasQuiet) {
      activeSince = now;
      lastProbe = Long.MIN_VALUE / 2;
    }
    return wasQuiet;
  }

  /** No data sent to the peer for {@link AgentTiming#QUIET_AFTER}. */
  boolean quiet(long now) {
    return now - lastActive > AgentTiming.QUIET_AFTER.toNanos();
  }

  /** The direct address in use, or null: the relay. Read on the packet path. */
  InetSocketAddress direct() {
    return direct;
  }

  Status status() {
    InetSocketAddress d = direct;
    return new Status(
        d != null, d, lastRttNanos, quality.snapshot(d != null), !quiet(System.nanoTime()));
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
    boolean quiet = quiet(now);
    // Turning active again, the active timeout counts from then: the quiet path's last pong may be
    // 10 s old, and the probe sent at once answers within a round trip if the path still works.
    long since = quiet ? lastDirectPong : Math.max(lastDirectPong, activeSince);
    long timeout =
        (quiet ? AgentTiming.DIRECT_TIMEOUT_QUIET : AgentTiming.DIRECT_TIMEOUT).toNanos();
    if (d != null && now - since > timeout) {
      direct = null;
      return d;
    }
    return null;
  }

  /** The addresses to probe now (the map's candidates and the direct one), empty when not due. */
  List<InetSocketAddress> probesDue(long now) {
    pending
        .values()
        .removeIf(
            x -> {
              if (now - x.sentNanos() <= AgentTiming.PROBE_FORGET_AFTER.toNanos()) {
                return false;
              }
              quality.lost(x.kind());
              return true;
            });
    InetSocketAddress d = direct;
    long interval =
        (d == null
                ? AgentTiming.PROBE_INTERVAL_NO_PATH
                : quiet(now) ? AgentTiming.PROBE_INTERVAL_QUIET : AgentTiming.PROBE_INTERVAL_DIRECT)
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
   * Whether a quality ping through the relay is due: the peer has no direct path (its probes
   * measure that one) and {@link AgentTiming#RELAY_QUALITY_INTERVAL} passed, or that times the
   * quiet factor for a quiet peer.
   */
  boolean relayQualityDue(long now) {
    long interval = AgentTiming.RELAY_QUALITY_INTERVAL.toNanos();
    if (direct != null || interval == 0) {
      return false;
    }
    if (quiet(now)) {
      interval *= AgentTiming.RELAY_QUALITY_QUIET_FACTOR;
    }
    if (now - lastRelayQuality < interval) {
      return false;
    }
    lastRelayQuality = now;
    return true;
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
