package dev.trellis.dataplane.agent;

/**
 * One peer's network quality per path, from the path-discovery pings the agent sends anyway (and,
 * on the relay, the bounded quality pings of {@link AgentTiming#RELAY_QUALITY_INTERVAL}): the round
 * trip, its jitter and the share of pings lost, over the last {@link #WINDOW} outcomes of each
 * path. Only pings that measure the path in use count: those to the current direct address, or
 * through the relay. A ping counts as lost when it is forgotten unanswered ({@link
 * AgentTiming#PROBE_FORGET_AFTER}).
 *
 * <p>Jitter is the mean absolute difference between consecutive round trips (RFC 3550's
 * interarrival jitter without its smoothing), which is what the reference study's figures compare.
 *
 * <p>Threads: {@link #answered} and {@link #lost} run on the paths thread; {@link #snapshot} is an
 * immutable value any thread may read.
 */
final class PathQuality {
  /** Outcomes kept per path. */
  static final int WINDOW = 30;

  /** Which path a ping measured. */
  enum Kind {
    DIRECT,
    RELAY,
    /** A candidate address that is not the path in use: says nothing about quality. */
    OTHER
  }

  /** The quality of one path; {@code samples} outcomes behind it (0: nothing measured yet). */
  record Snapshot(double rttMs, double jitterMs, double loss, int samples) {
    static final Snapshot NONE = new Snapshot(Double.NaN, Double.NaN, Double.NaN, 0);
  }

  private final Window direct = new Window();
  private final Window relay = new Window();
  private volatile Snapshot directSnapshot = Snapshot.NONE;
  private volatile Snapshot relaySnapshot = Snapshot.NONE;

  void answered(Kind kind, long rttNanos) {
    record(kind, rttNanos);
  }

  void lost(Kind kind) {
    record(kind, -1);
  }

  private void record(Kind kind, long rttNanos) {
    switch (kind) {
      case DIRECT -> directSnapshot = direct.add(rttNanos);
      case RELAY -> relaySnapshot = relay.add(rttNanos);
      case OTHER -> {}
    }
  }

  /** The quality of the direct path ({@code true}) or of the relay. */
  Snapshot snapshot(boolean directPath) {
    return directPath ? directSnapshot : relaySnapshot;
  }

  /** A ring of the last {@link #WINDOW} outcomes: a round trip in ns, or -1 for a lost ping. */
  private static final class Window {
    private final long[] outcomes = new long[WINDOW];
    private int count;
    private int next;

    Snapshot add(long rttNanos) {
      outcomes[next] = rttNanos;
      next = (next + 1) % WINDOW;
      count = Math.min(count + 1, WINDOW);
      int answered = 0;
      long sum = 0;
      long jitterSum = 0;
      int pairs = 0;
      long previous = -1;
      for (int i = 0; i < count; i++) {
        long rtt = outcomes[(next - count + i + WINDOW) % WINDOW];
        if (rtt < 0) {
          continue;
        }
        answered++;
        sum += rtt;
        if (previous >= 0) {
          jitterSum += Math.abs(rtt - previous);
          pairs++;
        }
        previous = rtt;
      }
      double rttMs = answered == 0 ? Double.NaN : sum / 1e6 / answered;
      double jitterMs = pairs == 0 ? (answered == 0 ? Double.NaN : 0) : jitterSum / 1e6 / pairs;
      return new Snapshot(rttMs, jitterMs, (count - answered) / (double) count, count);
    }
  }
}
