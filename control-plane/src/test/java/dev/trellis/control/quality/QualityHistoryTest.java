package dev.trellis.control.quality;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.control.ControlMessage.PeerQuality;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class QualityHistoryTest {
  private static final long MINUTE = 60_000;
  private static ActorTestKit kit;

  @BeforeAll
  static void start() {
    kit = ActorTestKit.create("quality-history");
  }

  @AfterAll
  static void stop() {
    kit.shutdownTestKit();
  }

  private static PeerQuality q(long peer, String path, Double rtt, Double jitter, Double loss) {
    return new PeerQuality(
        peer, path, path.equals("relay") ? "building-a" : null, rtt, jitter, loss);
  }

  private static List<QualityHistory.Point> history(
      ActorRef<QualityHistory.Command> h, long from, long to, long since) {
    TestProbe<QualityHistory.PointList> probe = kit.createTestProbe();
    h.tell(new QualityHistory.GetHistory(from, to, since, probe.ref()));
    return probe.receiveMessage().points();
  }

  private static List<QualityHistory.PairNow> current(ActorRef<QualityHistory.Command> h) {
    TestProbe<QualityHistory.PairList> probe = kit.createTestProbe();
    h.tell(new QualityHistory.GetCurrent(probe.ref()));
    return probe.receiveMessage().pairs();
  }

  @Test
  void pointsPerResolutionStepBoundedInTimeAndPairs() {
    // 5 minutes of 1-minute points, at most 2 pairs.
    var settings = new QualityHistory.Settings(Duration.ofMinutes(5), Duration.ofMinutes(1), 2);
    ActorRef<QualityHistory.Command> h = kit.spawn(QualityHistory.create(settings));
    long t0 = 100 * MINUTE;
    // Two reports in one minute (40 s apart) average; a third 10 s later is ignored (too soon).
    h.tell(
        new QualityHistory.Report(
            1, List.of(new PeerQuality(2, "relay", "building-a", 10.0, 1.0, 0.0, 1e6)), t0));
    h.tell(
        new QualityHistory.Report(
            1,
            List.of(new PeerQuality(2, "relay", "building-a", 20.0, 3.0, 0.5, 3e6)),
            t0 + 40_000));
    h.tell(new QualityHistory.Report(1, List.of(q(2, "relay", 999.0, 9.0, 1.0)), t0 + 50_000));
    List<QualityHistory.Point> points = history(h, 1, 2, 0);
    assertEquals(1, points.size());
    assertEquals(t0, points.get(0).atMillis());
    assertEquals(15.0, points.get(0).rttMs(), 1e-6);
    assertEquals(2.0, points.get(0).jitterMs(), 1e-6);
    assertEquals(0.25, points.get(0).loss(), 1 / 250.0); // kept in steps of 1/250
    assertEquals(2e6, points.get(0).bitsPerSecond(), 1e-6);
    assertEquals(20.0, current(h).get(0).rttMs(), 1e-6); // the latest report, not the mean

    // Seven more minutes: only the last five remain, in order; `since` cuts further.
    for (int m = 1; m <= 7; m++) {
      h.tell(
          new QualityHistory.Report(
              1,
              List.of(q(2, m % 2 == 0 ? "direct" : "relay", 1.0 * m, null, 0.0)),
              t0 + m * MINUTE));
    }
    points = history(h, 1, 2, 0);
    List<Long> at = new ArrayList<>();
    points.forEach(p -> at.add((p.atMillis() - t0) / MINUTE));
    assertEquals(List.of(3L, 4L, 5L, 6L, 7L), at);
    assertNull(points.get(0).jitterMs()); // not measured
    assertEquals("direct", points.get(1).path());
    assertEquals(2, history(h, 1, 2, t0 + 6 * MINUTE).size());
    assertEquals(List.of(), history(h, 2, 1, 0)); // directed: 2 measuring 1 is another pair

    // A third pair pushes out the one reported longest ago.
    h.tell(new QualityHistory.Report(3, List.of(q(1, "direct", 1.0, 0.0, 0.0)), t0 + 8 * MINUTE));
    h.tell(new QualityHistory.Report(4, List.of(q(1, "direct", 1.0, 0.0, 0.0)), t0 + 9 * MINUTE));
    List<Long> froms = current(h).stream().map(QualityHistory.PairNow::from).sorted().toList();
    assertEquals(List.of(3L, 4L), froms);
  }

  @Test
  void settingsAreChecked() {
    var base =
        ConfigFactory.parseString("quality { history = 24h, resolution = 1m, max-pairs = 10 }");
    assertEquals(1440, QualityHistory.Settings.from(base).slots());
    assertThrows(
        IllegalArgumentException.class,
        () ->
            QualityHistory.Settings.from(
                ConfigFactory.parseString("quality.resolution = 48h").withFallback(base)));
    assertThrows(
        IllegalArgumentException.class,
        () ->
            QualityHistory.Settings.from(
                ConfigFactory.parseString("quality.max-pairs = 0").withFallback(base)));
  }

  @Test
  void implausibleReportsAreRefused() {
    assertNull(
        QualityHistory.problem(
            new ControlMessage.QualityReport(List.of(q(2, "relay", 1.5, 0.1, 0.0)))));
    for (PeerQuality bad :
        List.of(
            q(-1, "relay", 1.0, 0.0, 0.0),
            new PeerQuality(2, "udp", null, 1.0, 0.0, 0.0),
            new PeerQuality(2, "relay", "bad region!", 1.0, 0.0, 0.0),
            q(2, "direct", -1.0, 0.0, 0.0),
            q(2, "direct", 1.0, 0.0, 1.5),
            q(2, "direct", Double.NaN, 0.0, 0.0))) {
      String problem = QualityHistory.problem(new ControlMessage.QualityReport(List.of(bad)));
      org.junit.jupiter.api.Assertions.assertNotNull(problem, bad.toString());
    }
    List<PeerQuality> many = new ArrayList<>();
    for (int i = 0; i <= ControlMessage.QualityReport.MAX_PEERS; i++) {
      many.add(q(i, "direct", 1.0, 0.0, 0.0));
    }
    org.junit.jupiter.api.Assertions.assertNotNull(
        QualityHistory.problem(new ControlMessage.QualityReport(many)));
  }
}
