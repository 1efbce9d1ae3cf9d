package dev.trellis.control.quality;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.trellis.proto.control.ControlMessage.PeerQuality;
import java.util.List;
import org.junit.jupiter.api.Test;

class QualitySeriesTest {
  private static final long STEP = 60_000;

  private static PeerQuality q(double rtt) {
    return new PeerQuality(2, "relay", "a", rtt, rtt / 10, 0.0, rtt * 1e6);
  }

  @Test
  void gapsStayEmptyTheRingKeepsTheNewestAndGrowsOnlyAsNeeded() {
    QualitySeries s = new QualitySeries(100);
    assertEquals(0, s.bytes());
    s.add(1, 2, q(1), 10 * STEP, STEP);
    s.add(1, 2, q(3), 13 * STEP, STEP); // steps 11 and 12 had no report
    List<QualityHistory.Point> points = s.points(0, STEP);
    assertEquals(
        List.of(10 * STEP, 13 * STEP),
        points.stream().map(QualityHistory.Point::atMillis).toList());
    assertEquals(16 * 9, s.bytes(), "a young pair holds 16 points' worth");
    s.add(1, 2, q(5), 12 * STEP, STEP); // older than the newest: dropped
    assertEquals(2, s.points(0, STEP).size());

    for (long step = 14; step < 400; step++) {
      s.add(1, 2, q(step), step * STEP, STEP);
    }
    points = s.points(0, STEP);
    assertEquals(100, points.size());
    assertEquals(300 * STEP, points.getFirst().atMillis());
    assertEquals(399 * STEP, points.getLast().atMillis());
    assertEquals(100 * 9, s.bytes());
    // Half floats: 3 significant digits.
    QualityHistory.Point last = points.getLast();
    assertEquals(399, last.rttMs(), 0.5);
    assertEquals(39.9, last.jitterMs(), 0.05);
    assertEquals(399e6, last.bitsPerSecond(), 0.5e6);
    assertEquals(399 * STEP, s.points(399 * STEP, STEP).getFirst().atMillis());

    // A report after a gap longer than the history starts it afresh.
    s.add(1, 2, new PeerQuality(2, "direct", null, null, null, 0.5), 1000 * STEP, STEP);
    points = s.points(0, STEP);
    assertEquals(1, points.size());
    assertEquals("direct", points.getFirst().path());
    assertNull(points.getFirst().rttMs());
    assertEquals(0.5, points.getFirst().loss(), 1 / 250.0);
  }
}
