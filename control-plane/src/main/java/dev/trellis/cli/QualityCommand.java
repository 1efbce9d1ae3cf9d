package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** `trellis quality list|history`: the network quality nodes report, now and over time. */
@Command(
    name = "quality",
    mixinStandardHelpOptions = true,
    description = "Show the round trip, jitter and loss nodes measure to their peers.",
    subcommands = {QualityCommand.ListPairs.class, QualityCommand.History.class})
final class QualityCommand extends AdminCommand.Group {

  /** Node id → hostname, for readable tables. */
  static Map<Long, String> hostnames(JsonNode nodes) {
    Map<Long, String> names = new HashMap<>();
    for (JsonNode n : nodes) {
      names.put(n.path("id").asLong(), n.path("hostname").asText());
    }
    return names;
  }

  static String ms(JsonNode value) {
    return value.isNumber() ? String.format(Locale.ROOT, "%.2f ms", value.asDouble()) : "-";
  }

  static String mbits(JsonNode value) {
    return value.isNumber()
        ? String.format(Locale.ROOT, "%.2f Mbit/s", value.asDouble() / 1e6)
        : "-";
  }

  static String percent(JsonNode value) {
    return value.isNumber() ? String.format(Locale.ROOT, "%.1f %%", 100 * value.asDouble()) : "-";
  }

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description =
          "Every pair's latest report: who measured whom, over which path, round trip, jitter"
              + " and loss.")
  static final class ListPairs extends AdminCommand {
    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode pairs = server.get("quality").path("pairs");
      if (json) {
        printJson(out, pairs);
        return;
      }
      Map<Long, String> names = hostnames(server.get("nodes").path("nodes"));
      List<String[]> rows = new ArrayList<>();
      rows.add(new String[] {"FROM", "TO", "PATH", "RTT", "JITTER", "LOSS", "TRAFFIC", "REPORTED"});
      for (JsonNode p : pairs) {
        String path = text(p, "path");
        if (p.path("relay").isTextual()) {
          path += " " + p.path("relay").asText();
        }
        rows.add(
            new String[] {
              names.getOrDefault(p.path("from").asLong(), text(p, "from")),
              names.getOrDefault(p.path("to").asLong(), text(p, "to")),
              path,
              ms(p.path("rttMs")),
              ms(p.path("jitterMs")),
              percent(p.path("loss")),
              mbits(p.path("bitsPerSecond")),
              Instant.ofEpochMilli(p.path("atMillis").asLong()).toString()
            });
      }
      printTable(out, rows);
    }
  }

  @Command(
      name = "history",
      mixinStandardHelpOptions = true,
      description = "One pair's points over time, as FROM measured TO (node ids).")
  static final class History extends AdminCommand {
    @Parameters(index = "0", paramLabel = "FROM", description = "The measuring node's id.")
    long from;

    @Parameters(index = "1", paramLabel = "TO", description = "The measured peer's id.")
    long to;

    @Option(
        names = "--since",
        paramLabel = "SECONDS",
        description = "Only the last SECONDS (default: the whole history the server keeps).")
    Long since;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode points =
          server
              .get("quality/" + from + "/" + to + (since == null ? "" : "?since=" + since))
              .path("points");
      if (json) {
        printJson(out, points);
        return;
      }
      List<String[]> rows = new ArrayList<>();
      rows.add(new String[] {"TIME", "PATH", "RTT", "JITTER", "LOSS", "TRAFFIC"});
      for (JsonNode p : points) {
        rows.add(
            new String[] {
              Instant.ofEpochMilli(p.path("atMillis").asLong()).toString(),
              text(p, "path"),
              ms(p.path("rttMs")),
              ms(p.path("jitterMs")),
              percent(p.path("loss")),
              mbits(p.path("bitsPerSecond"))
            });
      }
      printTable(out, rows);
    }
  }
}
