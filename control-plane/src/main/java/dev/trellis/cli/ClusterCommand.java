package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** `trellis cluster status`: the members of the server's cluster and where the entities are. */
@Command(
    name = "cluster",
    mixinStandardHelpOptions = true,
    description = "Show the coordination cluster.",
    subcommands = {ClusterCommand.Status.class})
final class ClusterCommand extends AdminCommand.Group {

  @Command(
      name = "status",
      mixinStandardHelpOptions = true,
      description =
          "Members (address, roles, status, reachability) and sharded entities per member.")
  static final class Status extends AdminCommand {
    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode status = server.get("cluster");
      if (json) {
        printJson(out, status);
        return;
      }
      String self = status.path("self").asText();
      JsonNode entities = status.path("entities");
      TreeSet<String> kinds = new TreeSet<>();
      entities.fieldNames().forEachRemaining(kinds::add);
      List<String[]> rows = new ArrayList<>();
      List<String> header = new ArrayList<>(List.of("MEMBER", "ROLES", "STATUS", "REACHABLE"));
      kinds.forEach(k -> header.add(k.toUpperCase(Locale.ROOT)));
      rows.add(header.toArray(String[]::new));
      for (JsonNode m : status.path("members")) {
        String address = m.path("address").asText();
        List<String> row =
            new ArrayList<>(
                List.of(
                    address + (address.equals(self) ? " (this)" : ""),
                    joined(m.path("roles")),
                    text(m, "status"),
                    yesNo(m, "reachable")));
        for (String k : kinds) {
          JsonNode count = entities.path(k).path(address);
          row.add(count.isMissingNode() ? "0" : count.asText());
        }
        rows.add(row.toArray(String[]::new));
      }
      printTable(out, rows);
    }
  }
}
