package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** `trellis relays list`: the cluster's relays and their load. */
@Command(
    name = "relays",
    mixinStandardHelpOptions = true,
    description = "Show the relays.",
    subcommands = {RelaysCommand.ListRelays.class})
final class RelaysCommand extends AdminCommand.Group {

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description = "Region, address, connected nodes and packets/s of every relay.")
  static final class ListRelays extends AdminCommand {
    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode relays = server.get("relays").path("relays");
      if (json) {
        printJson(out, relays);
        return;
      }
      List<String[]> rows = new ArrayList<>();
      rows.add(
          new String[] {"REGION", "URL", "MEMBER", "NODES", "PACKETS/S", "FORWARDED", "DROPPED"});
      for (JsonNode r : relays) {
        rows.add(
            new String[] {
              text(r, "region"),
              text(r, "url"),
              text(r, "member"),
              text(r, "connectedNodes"),
              String.format(Locale.ROOT, "%.0f", r.path("packetsPerSecond").asDouble()),
              text(r, "packetsForwarded"),
              text(r, "dropped")
            });
      }
      printTable(out, rows);
    }
  }
}
