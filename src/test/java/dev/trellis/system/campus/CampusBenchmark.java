package dev.trellis.system.campus;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.system.campus.CampusTestbed.LinkShape;
import dev.trellis.system.campus.CampusTestbed.Zone;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.Iperf;
import dev.trellis.system.netns.Metrics;
import dev.trellis.system.netns.Ping;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * The issue-4 comparison on the campus testbed, on demand ({@code scripts/bench-campus}): two hosts
 * measured raw (zone OPEN: plain routing between them), over direct Trellis (zone LAB) and over
 * relayed Trellis (zone CAMPUS: UDP dropped, only TCP to the server) and over tinc 1.0 TCPOnly
 * through a hub on the server host (the same zone; {@link TincOverlay}), first on plain veths, then
 * on the emulated campus link (tbf rate and a userspace delay line per client link). Rounds are
 * interleaved (raw, direct, relayed, tinc, raw, ...) so that the machine's noise falls on all
 * alike. Each measurement: {@code ping -c 20 -i 0.2} (average RTT) and a single-stream iperf3 TCP
 * transfer; the table gives medians and the study's measures, loss = ln(raw/overlay)·100 and RTT
 * increase = ln(overlay/raw)·100.
 *
 * <p>System properties: {@code trellis.bench.campus=true} (required), {@code trellis.bench.rounds}
 * (3), {@code trellis.bench.seconds} (10), {@code trellis.bench.rate} (100, Mbit/s), {@code
 * trellis.bench.delayus} (2000), {@code trellis.bench.delayline} (the compiled {@code
 * scripts/delayline.c}), {@code trellis.bench.out} (markdown file).
 */
@EnabledIfSystemProperty(named = "trellis.bench.campus", matches = "true")
class CampusBenchmark {
  private static final Duration PATH_TIMEOUT = Duration.ofSeconds(60);

  enum Mode {
    RAW(Zone.OPEN, null),
    DIRECT(Zone.LAB, "direct"),
    RELAYED(Zone.CAMPUS, "relay"),
    /** tinc 1.0 TCPOnly through its hub on the server host, same zone as RELAYED. */
    TINC(Zone.CAMPUS, null);

    final Zone zone;
    final String path;

    Mode(Zone zone, String path) {
      this.zone = zone;
      this.path = path;
    }
  }

  record Sample(double mbps, double rttMs) {}

  @Test
  void rawVersusDirectVersusRelayed() throws IOException {
    int rounds = Integer.getInteger("trellis.bench.rounds", 3);
    int seconds = Integer.getInteger("trellis.bench.seconds", 10);
    int rate = Integer.getInteger("trellis.bench.rate", 100);
    int delay = Integer.getInteger("trellis.bench.delayus", 2000);
    Path delayLine = Path.of(System.getProperty("trellis.bench.delayline", "scripts/delayline"));
    StringBuilder table = new StringBuilder();
    table.append(
        "| link | path | Mbit/s (runs) | median | loss | RTT ms (runs) | median | RTT increase |\n");
    table.append("|---|---|---|---|---|---|---|---|\n");
    measureLink("unshaped veth", null, rounds, seconds, table);
    measureLink(
        rate + " Mbit/s tbf + " + (delay / 1000.0) + " ms one way",
        new LinkShape(rate, delay, delayLine.toAbsolutePath()),
        rounds,
        seconds,
        table);
    String out = table.toString();
    System.out.println(out);
    Path file = Path.of(System.getProperty("trellis.bench.out", "target/bench-campus.md"));
    Files.createDirectories(file.toAbsolutePath().getParent());
    Files.writeString(file, out);
  }

  /**
   * The packet filter's cost ({@code scripts/bench-campus policy}): the same two hosts, direct and
   * relayed, with no policy and with a 100-rule policy whose last rule is the one that lets them
   * talk, rounds interleaved (no policy, policy, no policy, ...) on the unshaped testbed.
   */
  @Test
  @EnabledIfSystemProperty(named = "trellis.bench.policy", matches = "true")
  void withAndWithoutAPolicy() throws IOException {
    int rounds = Integer.getInteger("trellis.bench.rounds", 3);
    int seconds = Integer.getInteger("trellis.bench.seconds", 10);
    StringBuilder policy = new StringBuilder("{\"acls\": [\n");
    for (int i = 1; i < 100; i++) {
      policy.append(
          String.format(
              Locale.ROOT,
              "{\"action\": \"accept\", \"src\": [\"192.0.2.%d/32\"], \"dst\": [\"*:%d\"]},%n",
              i,
              1000 + i));
    }
    policy.append("{\"action\": \"accept\", \"src\": [\"bench@\"], \"dst\": [\"bench@:*\"]}\n]}\n");
    Path file = Files.createTempFile("trellis-bench-policy", ".hujson");
    Files.writeString(file, policy);
    StringBuilder table = new StringBuilder();
    table.append("| path | policy | Mbit/s (runs) | median | RTT ms (runs) | median |\n");
    table.append("|---|---|---|---|---|---|\n");
    try (CampusTestbed campus = CampusTestbed.create()) {
      List<TrellisAgentProcess> pair = twoHosts(campus);
      TrellisAgentProcess a = pair.get(0);
      TrellisAgentProcess b = pair.get(1);
      Map<String, List<Sample>> samples = new java.util.LinkedHashMap<>();
      for (int round = 1; round <= rounds; round++) {
        for (Mode mode : List.of(Mode.DIRECT, Mode.RELAYED)) {
          for (boolean withPolicy : List.of(false, true)) {
            if (withPolicy) {
              campus.server().admin("policy", "set", file.toString()).orThrow();
            } else {
              campus.server().admin("policy", "clear").orThrow();
            }
            for (TrellisAgentProcess agent : List.of(a, b)) {
              Await.until(
                  agent.hostname() + "'s filter " + (withPolicy ? "set" : "cleared"),
                  PATH_TIMEOUT,
                  () -> agent.statusNow().path("filter").path("policy").asBoolean() == withPolicy);
            }
            if (round == 1) {
              measure(campus, a, b, mode, 5);
            }
            Sample sample = measure(campus, a, b, mode, seconds);
            String row = mode.path + (withPolicy ? " | 100 rules" : " | none");
            samples.computeIfAbsent(row, r -> new ArrayList<>()).add(sample);
            Metrics.report(
                "bench policy round %d %s: %.1f Mbit/s, RTT %.3f ms",
                round, row, sample.mbps(), sample.rttMs());
          }
        }
      }
      for (var e : samples.entrySet()) {
        double[] mbps = mbps(e.getValue());
        double[] rtt = rtts(e.getValue());
        table.append(
            String.format(
                Locale.ROOT,
                "| %s | %s | %.1f | %s | %.3f |%n",
                e.getKey(),
                join(mbps, "%.1f"),
                median(mbps),
                join(rtt, "%.3f"),
                median(rtt)));
      }
      long dropped = b.statusNow().path("filter").path("dropped").asLong();
      table
          .append("\nPackets b's filter dropped over the whole run: ")
          .append(dropped)
          .append('\n');
    }
    String out = table.toString();
    System.out.println(out);
    Path md = Path.of(System.getProperty("trellis.bench.out", "target/bench-campus.md"));
    Files.createDirectories(md.toAbsolutePath().getParent());
    Files.writeString(md, out);
  }

  /** The server and two campus hosts logged in, each in the other's map. */
  private static List<TrellisAgentProcess> twoHosts(CampusTestbed campus) {
    campus.server().start();
    String key = campus.server().userWithReusableKey("bench");
    TrellisAgentProcess a = campus.newCampusAgent("a", "bench-a");
    TrellisAgentProcess b = campus.newCampusAgent("b", "bench-b");
    for (TrellisAgentProcess agent : List.of(a, b)) {
      agent.start();
      agent.up(campus.server().url(), key);
    }
    Await.until(
        "both peers in each other's map",
        PATH_TIMEOUT,
        () -> a.peer("bench-b") != null && b.peer("bench-a") != null);
    return List.of(a, b);
  }

  private void measureLink(
      String label, LinkShape shape, int rounds, int seconds, StringBuilder table) {
    try (CampusTestbed campus = CampusTestbed.create(shape)) {
      List<TrellisAgentProcess> pair = twoHosts(campus);
      TrellisAgentProcess a = pair.get(0);
      TrellisAgentProcess b = pair.get(1);
      tinc = TincOverlay.create(campus, pair);
      Map<Mode, List<Sample>> samples = new EnumMap<>(Mode.class);
      for (int round = 1; round <= rounds; round++) {
        for (Mode mode : Mode.values()) {
          // The first transfer over each path also warms the JIT up (the agents' and the relay's
          // hot paths).
          if (round == 1 && mode != Mode.RAW && mode != Mode.TINC) {
            measure(campus, a, b, mode, 5);
          }
          Sample s = measure(campus, a, b, mode, seconds);
          samples.computeIfAbsent(mode, m -> new ArrayList<>()).add(s);
          Metrics.report(
              "bench %s round %d %s: %.1f Mbit/s, RTT %.3f ms",
              label, round, mode, s.mbps(), s.rttMs());
        }
      }
      double rawMbps = median(mbps(samples.get(Mode.RAW)));
      double rawRtt = median(rtts(samples.get(Mode.RAW)));
      for (Mode mode : Mode.values()) {
        double[] mbps = mbps(samples.get(mode));
        double[] rtt = rtts(samples.get(mode));
        double m = median(mbps);
        double r = median(rtt);
        table.append(
            String.format(
                Locale.ROOT,
                "| %s | %s | %s | %.1f | %s | %s | %.3f | %s |%n",
                label,
                mode.name().toLowerCase(Locale.ROOT),
                join(mbps, "%.1f"),
                m,
                mode == Mode.RAW
                    ? "—"
                    : String.format(Locale.ROOT, "%.1f %%", Math.log(rawMbps / m) * 100),
                join(rtt, "%.3f"),
                r,
                mode == Mode.RAW
                    ? "—"
                    : String.format(Locale.ROOT, "%.1f %%", Math.log(r / rawRtt) * 100)));
      }
      double relayed = median(mbps(samples.get(Mode.RELAYED)));
      double tincMbps = median(mbps(samples.get(Mode.TINC)));
      table.append(
          String.format(
              Locale.ROOT,
              "| %s | relayed ÷ tinc | | %.2f× | | | %.2f× RTT | |%n",
              label,
              relayed / tincMbps,
              median(rtts(samples.get(Mode.RELAYED))) / median(rtts(samples.get(Mode.TINC)))));
    } finally {
      if (tinc != null) {
        tinc.close();
        tinc = null;
      }
    }
  }

  /** The tinc overlay of the testbed being measured, or null. */
  private TincOverlay tinc;

  private Sample measure(
      CampusTestbed campus, TrellisAgentProcess a, TrellisAgentProcess b, Mode mode, int seconds) {
    campus.moveTo(a, mode.zone);
    campus.moveTo(b, mode.zone);
    String target =
        switch (mode) {
          case RAW -> b.address();
          case TINC -> tinc.address(b);
          default -> b.overlay();
        };
    if (mode.path != null) {
      // Traffic both ways so discovery has something to upgrade or fall back on.
      Await.until(
          "the path between the hosts being " + mode.path,
          PATH_TIMEOUT,
          () -> {
            Ping.ping(a.namespace(), target, 2, 1, null, "0.2");
            return mode.path.equals(a.pathTo(b)) && mode.path.equals(b.pathTo(a));
          });
    }
    if (mode == Mode.TINC) {
      tinc.up();
    }
    Ping.Result ping;
    Iperf.Result iperf;
    try {
      Ping.ping(a.namespace(), target, 3, 2, null, "0.2");
      ping = Ping.ping(a.namespace(), target, 20, 2, null, "0.2");
      assertTrue(ping.allReplied(), mode + ": ping lost replies:\n" + ping.raw().stdout());
      iperf = Iperf.tcp(b.namespace(), a.namespace(), target, seconds, false);
    } finally {
      if (mode == Mode.TINC) {
        tinc.down();
      }
    }
    if (mode.path != null) {
      assertTrue(mode.path.equals(a.pathTo(b)), mode + ": the path changed during the measurement");
    }
    return new Sample(iperf.mbps(), ping.rttAvgMs());
  }

  private static double[] mbps(List<Sample> samples) {
    return samples.stream().mapToDouble(Sample::mbps).toArray();
  }

  private static double[] rtts(List<Sample> samples) {
    return samples.stream().mapToDouble(Sample::rttMs).toArray();
  }

  static double median(double[] values) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    int n = sorted.length;
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }

  private static String join(double[] values, String format) {
    List<String> parts = new ArrayList<>();
    for (double v : values) {
      parts.add(String.format(Locale.ROOT, format, v));
    }
    return String.join(", ", parts);
  }
}
