package dev.trellis.control.quality;

import com.typesafe.config.Config;
import dev.trellis.control.cluster.AskEveryMember;
import dev.trellis.control.relay.RelaySettings;
import dev.trellis.persistence.CborSerializable;
import dev.trellis.proto.control.ControlMessage;
import java.time.Duration;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * The network quality nodes report (round trip, jitter, loss and path to each peer, once a minute),
 * kept as a bounded history per directed pair: one point per {@link Settings#resolution} for the
 * last {@link Settings#history}, for at most {@link Settings#maxPairs} pairs (the one reported
 * longest ago goes first). A node's reports closer together than a third of the resolution are
 * ignored, so a node cannot make the server work harder than the history needs. Reports of a node
 * arrive at the replica holding its session, so each replica has one of these, in memory only: a
 * restart starts the history afresh. {@link #current} and {@link #history} ask every replica's and
 * merge.
 *
 * <p>Threads: its state is its actor's.
 */
public final class QualityHistory {
  public static final ServiceKey<Command> KEY =
      ServiceKey.create(Command.class, "trellis-quality-history");

  /** {@code trellis.quality}: how far back, at what resolution, for how many pairs. */
  public record Settings(Duration history, Duration resolution, int maxPairs) {
    public static Settings from(Config trellis) {
      Config q = trellis.getConfig("quality");
      Duration history = q.getDuration("history");
      Duration resolution = q.getDuration("resolution");
      int maxPairs = q.getInt("max-pairs");
      if (resolution.toSeconds() < 1 || history.compareTo(resolution) < 0) {
        throw new IllegalArgumentException(
            "trellis.quality.resolution must be at least 1s and at most trellis.quality.history");
      }
      if (history.dividedBy(resolution) > 100_000) {
        throw new IllegalArgumentException(
            "trellis.quality.history / resolution must be at most 100000 points per pair");
      }
      if (maxPairs < 1) {
        throw new IllegalArgumentException("trellis.quality.max-pairs must be at least 1");
      }
      return new Settings(history, resolution, maxPairs);
    }

    int slots() {
      return (int) history.dividedBy(resolution);
    }
  }

  public sealed interface Command extends CborSerializable {}

  /** What node {@code from} measured at {@code atMillis} (epoch), already checked. */
  public record Report(long from, List<ControlMessage.PeerQuality> peers, long atMillis)
      implements Command {}

  /** The latest figures of every pair this replica holds. */
  public record GetCurrent(ActorRef<PairList> replyTo) implements Command {}

  /** The points of {@code from} → {@code to} since {@code sinceMillis}. */
  public record GetHistory(long from, long to, long sinceMillis, ActorRef<PointList> replyTo)
      implements Command {}

  /** A pair's latest report. */
  public record PairNow(
      long from,
      long to,
      String path,
      String relay,
      Double rttMs,
      Double jitterMs,
      Double loss,
      Double bitsPerSecond,
      long atMillis)
      implements CborSerializable {}

  public record PairList(List<PairNow> pairs) implements CborSerializable {}

  /** One resolution step: the mean of the reports in it; {@code path} of the last one. */
  public record Point(
      long atMillis, String path, Double rttMs, Double jitterMs, Double loss, Double bitsPerSecond)
      implements CborSerializable {}

  public record PointList(List<Point> points) implements CborSerializable {}

  private QualityHistory() {}

  public static Behavior<Command> create(Settings settings) {
    return Behaviors.setup(
        ctx -> {
          ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
          Map<Pair, QualitySeries> series = new HashMap<>();
          Map<Long, Long> lastReport = new HashMap<>();
          return Behaviors.receiveMessage(
              m -> {
                switch (m) {
                  case Report r
                      when r.atMillis() - lastReport.getOrDefault(r.from(), Long.MIN_VALUE / 2)
                          < settings.resolution().toMillis() / 3 -> {
                    // A node reporting more often than a third of the resolution: ignored.
                  }
                  case Report r -> {
                    lastReport.put(r.from(), r.atMillis());
                    for (ControlMessage.PeerQuality q : r.peers()) {
                      Pair pair = new Pair(r.from(), q.peer());
                      QualitySeries s = series.get(pair);
                      if (s == null) {
                        if (series.size() >= settings.maxPairs()) {
                          series.entrySet().stream()
                              .min(Comparator.comparingLong(e -> e.getValue().latest.atMillis()))
                              .ifPresent(oldest -> series.remove(oldest.getKey()));
                        }
                        s = new QualitySeries(settings.slots());
                        series.put(pair, s);
                      }
                      s.add(r.from(), q.peer(), q, r.atMillis(), settings.resolution().toMillis());
                    }
                  }
                  case GetCurrent g ->
                      g.replyTo()
                          .tell(new PairList(series.values().stream().map(s -> s.latest).toList()));
                  case GetHistory h -> {
                    QualitySeries s = series.get(new Pair(h.from(), h.to()));
                    h.replyTo()
                        .tell(
                            new PointList(
                                s == null
                                    ? List.of()
                                    : s.points(h.sinceMillis(), settings.resolution().toMillis())));
                  }
                }
                return Behaviors.same();
              });
        });
  }

  private record Pair(long from, long to) {}

  /** Why a quality report cannot be kept, or null when every figure is plausible. */
  public static String problem(ControlMessage.QualityReport report) {
    if (report.peers() == null) {
      return "no peers";
    }
    if (report.peers().size() > ControlMessage.QualityReport.MAX_PEERS) {
      return "more than " + ControlMessage.QualityReport.MAX_PEERS + " peers";
    }
    for (ControlMessage.PeerQuality q : report.peers()) {
      if (q == null || q.peer() < 0) {
        return "a peer without a node id";
      }
      if (!"direct".equals(q.path()) && !"relay".equals(q.path())) {
        return "path must be direct or relay";
      }
      if (q.relay() != null && !RelaySettings.REGION.matcher(q.relay()).matches()) {
        return "invalid relay region";
      }
      if (!within(q.rttMs(), 0, 600_000) || !within(q.jitterMs(), 0, 600_000)) {
        return "round trip and jitter must be 0 to 600000 ms";
      }
      if (!within(q.loss(), 0, 1)) {
        return "loss must be 0 to 1";
      }
      if (!within(q.bitsPerSecond(), 0, 1e12)) {
        return "traffic must be 0 to 10^12 bits/s";
      }
    }
    return null;
  }

  private static boolean within(Double v, double min, double max) {
    return v == null || (v >= min && v <= max);
  }

  // ---- across replicas ---------------------------------------------------------------------

  /** Every replica's latest figures; a pair reported to two replicas keeps the newer report. */
  public static CompletionStage<PairList> current(ActorSystem<?> system, Duration timeout) {
    return AskEveryMember.<Command, PairList>ask(system, KEY, timeout, GetCurrent::new)
        .thenApply(
            replies -> {
              Map<Pair, PairNow> newest = new HashMap<>();
              for (PairList l : replies) {
                for (PairNow p : l.pairs()) {
                  newest.merge(
                      new Pair(p.from(), p.to()),
                      p,
                      (a, b) -> a.atMillis() >= b.atMillis() ? a : b);
                }
              }
              return new PairList(
                  newest.values().stream()
                      .sorted(
                          Comparator.comparingLong(PairNow::from).thenComparingLong(PairNow::to))
                      .toList());
            });
  }

  /** A pair's points from every replica (a node that moved replicas has some on each), by time. */
  public static CompletionStage<PointList> history(
      ActorSystem<?> system, long from, long to, long sinceMillis, Duration timeout) {
    return AskEveryMember.<Command, PointList>ask(
            system, KEY, timeout, r -> new GetHistory(from, to, sinceMillis, r))
        .thenApply(
            replies -> {
              Map<Long, Point> byTime = new HashMap<>();
              for (PointList l : replies) {
                l.points().forEach(p -> byTime.putIfAbsent(p.atMillis(), p));
              }
              return new PointList(
                  byTime.values().stream()
                      .sorted(Comparator.comparingLong(Point::atMillis))
                      .toList());
            });
  }
}
