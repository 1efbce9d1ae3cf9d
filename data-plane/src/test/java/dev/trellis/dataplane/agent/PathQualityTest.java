package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class PathQualityTest {
  private static final long MS = 1_000_000;

  @Test
  void roundTripJitterAndLossOfEachPath() {
    PathQuality q = new PathQuality();
    assertEquals(0, q.snapshot(true).samples());
    assertTrue(Double.isNaN(q.snapshot(true).rttMs()));
    // 10, 14, lost, 12 ms on the direct path.
    q.answered(PathQuality.Kind.DIRECT, 10 * MS);
    q.answered(PathQuality.Kind.DIRECT, 14 * MS);
    q.lost(PathQuality.Kind.DIRECT);
    q.answered(PathQuality.Kind.DIRECT, 12 * MS);
    PathQuality.Snapshot direct = q.snapshot(true);
    assertEquals(12.0, direct.rttMs(), 1e-9);
    assertEquals(3.0, direct.jitterMs(), 1e-9); // |14-10| and |12-14|, the loss skipped
    assertEquals(0.25, direct.loss(), 1e-9);
    assertEquals(4, direct.samples());
    // The relay's pings and the candidates' probes leave the direct path's figures alone.
    q.answered(PathQuality.Kind.RELAY, 40 * MS);
    q.answered(PathQuality.Kind.OTHER, 1 * MS);
    q.lost(PathQuality.Kind.OTHER);
    assertEquals(direct, q.snapshot(true));
    PathQuality.Snapshot relay = q.snapshot(false);
    assertEquals(40.0, relay.rttMs(), 1e-9);
    assertEquals(0.0, relay.jitterMs(), 1e-9);
    assertEquals(0.0, relay.loss(), 1e-9);
  }

  @Test
  void onlyTheLastWindowCounts() {
    PathQuality q = new PathQuality();
    for (int i = 0; i < PathQuality.WINDOW; i++) {
      q.lost(PathQuality.Kind.RELAY);
    }
    assertEquals(1.0, q.snapshot(false).loss(), 1e-9);
    assertTrue(Double.isNaN(q.snapshot(false).rttMs()));
    for (int i = 0; i < PathQuality.WINDOW; i++) {
      q.answered(PathQuality.Kind.RELAY, 5 * MS);
    }
    PathQuality.Snapshot s = q.snapshot(false);
    assertEquals(0.0, s.loss(), 1e-9);
    assertEquals(5.0, s.rttMs(), 1e-9);
    assertEquals(PathQuality.WINDOW, s.samples());
  }
}
