package dev.trellis.control.quality;

import dev.trellis.proto.control.ControlMessage;
import java.util.ArrayList;
import java.util.List;

/**
 * One directed pair's history: a ring of points, one per resolution step, newest last, at most
 * {@code capacity} of them. Compact, because a campus may keep thousands of pairs for a day: a
 * point is 9 bytes (round trip, jitter and Mbit/s as IEEE half floats, loss in 1/250 steps, the
 * path, the number of reports averaged), and a pair's arrays start small and grow as its history
 * does. Steps no report fell into are empty points; a report older than the newest step is dropped.
 *
 * <p>Not thread-safe: owned by the {@link QualityHistory} actor.
 */
final class QualitySeries {
  private static final int FIRST_LENGTH = 16;
  private static final short NO_VALUE = Float.floatToFloat16(Float.NaN);
  private static final byte NO_LOSS = (byte) 255;
  private static final byte DIRECT = 1;
  private static final byte RELAY = 2;

  private final int capacity;
  private short[] rtt = new short[0];
  private short[] jitter = new short[0];
  private short[] mbits = new short[0];
  private byte[] loss = new byte[0];
  private byte[] path = new byte[0];
  private byte[] reports = new byte[0];

  /** Points held (oldest at {@code start}), and the step of the newest; -1: none yet. */
  private int size;

  private int start;
  private long newestStep = -1;

  /** The latest report as it came, for "now" views. */
  QualityHistory.PairNow latest;

  QualitySeries(int capacity) {
    this.capacity = capacity;
  }

  void add(long from, long to, ControlMessage.PeerQuality q, long atMillis, long resolutionMillis) {
    long step = atMillis / resolutionMillis;
    if (newestStep >= 0 && step < newestStep) {
      return; // out of order: the history only moves forward
    }
    latest =
        new QualityHistory.PairNow(
            from,
            to,
            q.path(),
            q.relay(),
            q.rttMs(),
            q.jitterMs(),
            q.loss(),
            q.bitsPerSecond(),
            atMillis);
    if (newestStep < 0 || step - newestStep >= capacity) {
      size = 0;
      start = 0;
      newestStep = step - 1;
    }
    while (newestStep < step) {
      append();
      newestStep++;
    }
    int i = index(size - 1);
    int k = reports[i] & 0xff;
    rtt[i] = mean(rtt[i], q.rttMs(), k);
    jitter[i] = mean(jitter[i], q.jitterMs(), k);
    mbits[i] = mean(mbits[i], q.bitsPerSecond() == null ? null : q.bitsPerSecond() / 1e6, k);
    if (q.loss() != null) {
      double previous = loss[i] == NO_LOSS || k == 0 ? q.loss() : (loss[i] & 0xff) / 250.0;
      loss[i] = (byte) Math.round(250 * (previous * k + q.loss()) / (k + 1));
    }
    path[i] = "direct".equals(q.path()) ? DIRECT : RELAY;
    reports[i] = (byte) Math.min(255, k + 1);
  }

  /** A new, empty newest point; the oldest goes when the ring is full. */
  private void append() {
    if (size == rtt.length && rtt.length < capacity) {
      grow(Math.min(capacity, Math.max(FIRST_LENGTH, rtt.length * 2)));
    }
    int i;
    if (size < rtt.length) {
      i = index(size);
      size++;
    } else {
      i = start;
      start = (start + 1) % rtt.length;
    }
    rtt[i] = NO_VALUE;
    jitter[i] = NO_VALUE;
    mbits[i] = NO_VALUE;
    loss[i] = NO_LOSS;
    path[i] = 0;
    reports[i] = 0;
  }

  /** Bigger arrays with the points in order from index 0. */
  private void grow(int length) {
    short[] r = new short[length];
    short[] j = new short[length];
    short[] b = new short[length];
    byte[] l = new byte[length];
    byte[] p = new byte[length];
    byte[] n = new byte[length];
    for (int k = 0; k < size; k++) {
      int from = index(k);
      r[k] = rtt[from];
      j[k] = jitter[from];
      b[k] = mbits[from];
      l[k] = loss[from];
      p[k] = path[from];
      n[k] = reports[from];
    }
    rtt = r;
    jitter = j;
    mbits = b;
    loss = l;
    path = p;
    reports = n;
    start = 0;
  }

  private int index(int k) {
    return (start + k) % rtt.length;
  }

  /** The running mean of a point with {@code k} reports before this one; absent values skipped. */
  private static short mean(short current, Double value, int k) {
    if (value == null || value.isNaN()) {
      return current;
    }
    float now = Float.float16ToFloat(current);
    if (Float.isNaN(now) || k == 0) {
      return Float.floatToFloat16(value.floatValue());
    }
    return Float.floatToFloat16((float) ((now * k + value) / (k + 1)));
  }

  /** The points with a report since {@code sinceMillis}, oldest first. */
  List<QualityHistory.Point> points(long sinceMillis, long resolutionMillis) {
    List<QualityHistory.Point> out = new ArrayList<>();
    for (int k = 0; k < size; k++) {
      int i = index(k);
      long step = newestStep - (size - 1 - k);
      if (reports[i] == 0 || step * resolutionMillis < sinceMillis) {
        continue;
      }
      out.add(
          new QualityHistory.Point(
              step * resolutionMillis,
              path[i] == DIRECT ? "direct" : "relay",
              value(rtt[i], 1),
              value(jitter[i], 1),
              loss[i] == NO_LOSS ? null : (loss[i] & 0xff) / 250.0,
              value(mbits[i], 1e6)));
    }
    return out;
  }

  private static Double value(short half, double scale) {
    float f = Float.float16ToFloat(half);
    return Float.isNaN(f) ? null : f * scale;
  }

  /** Bytes its arrays take now (9 per point they have room for). */
  int bytes() {
    return rtt.length * 9;
  }
}
