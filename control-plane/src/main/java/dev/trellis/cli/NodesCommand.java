package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.dataplane.cli.TextTable;
import java.io.PrintWriter;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** `trellis nodes`: registered machines. */
@Command(
    name = "nodes",
    mixinStandardHelpOptions = true,
    description = "Manage registered nodes.",
    subcommands = {
      NodesCommand.ListNodes.class,
      NodesCommand.Expire.class,
      NodesCommand.Rename.class,
      NodesCommand.Delete.class,
      NodesCommand.Tag.class
    })
final class NodesCommand extends AdminCommand.Group {

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description = "List nodes with addresses, tags and presence.")
  static final class ListNodes extends AdminCommand {
    @Option(names = "--user", paramLabel = "USER", description = "Only this user's nodes.")
    String user;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode nodes =
          server
              .get("nodes" + (user == null ? "" : "?user=" + AdminOptions.segment(user)))
              .path("nodes");
      if (json) {
        printJson(out, nodes);
        return;
      }
      Instant now = Instant.now();
      List<String[]> rows = new ArrayList<>();
      rows.add(
          new String[] {
            "ID",
            "HOSTNAME",
            "USER",
            "IPV4",
            "IPV6",
            "TAGS",
            "ONLINE",
            "LAST SEEN",
            "STATE",
            "EXPIRY"
          });
      for (JsonNode n : nodes) {
        rows.add(
            new String[] {
              text(n, "id"),
              text(n, "hostname"),
              text(n, "user"),
              text(n, "ipv4"),
              text(n, "ipv6"),
              joined(n.path("tags")),
              yesNo(n, "online"),
              n.path("online").asBoolean() ? "now" : TextTable.ago(n.get("lastSeen"), now),
              state(n, now),
              n.hasNonNull("expiry") ? time(n, "expiry") : "never"
            });
      }
      printTable(out, rows);
    }

    private static String state(JsonNode node, Instant now) {
      String state;
      if (node.path("loggedOut").asBoolean()) state = "logged out";
      else if (node.path("expired").asBoolean()
          || (node.hasNonNull("expiry")
              && !now.isBefore(Instant.parse(node.get("expiry").asText())))) state = "expired";
      else state = "active";
      return node.path("ephemeral").asBoolean() ? state + " (ephemeral)" : state;
    }
  }

  @Command(
      name = "expire",
      mixinStandardHelpOptions = true,
      description = "Expire a node's key now; it must log in again.")
  static final class Expire extends AdminCommand {
    @Parameters(paramLabel = "ID")
    long id;

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      JsonNode node = server.post("nodes/" + id + "/expire", null);
      out.println("expired node " + id + " (" + node.path("hostname").asText() + ")");
    }
  }

  @Command(
      name = "rename",
      mixinStandardHelpOptions = true,
      description = "Give a node a new hostname.")
  static final class Rename extends AdminCommand {
    @Parameters(index = "0", paramLabel = "ID")
    long id;

    @Parameters(index = "1", paramLabel = "NAME", description = "1-63 characters of a-z 0-9 -")
    String name;

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      JsonNode node = server.post("nodes/" + id + "/rename", Map.of("name", name));
      out.println("renamed node " + id + " to " + node.path("hostname").asText());
    }
  }

  @Command(
      name = "delete",
      mixinStandardHelpOptions = true,
      description = "Delete a node; its addresses are freed.")
  static final class Delete extends AdminCommand {
    @Parameters(paramLabel = "ID")
    long id;

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      JsonNode node = server.delete("nodes/" + id);
      out.println("deleted node " + id + " (" + node.path("hostname").asText() + ")");
    }
  }

  @Command(
      name = "tag",
      mixinStandardHelpOptions = true,
      description = "Replace a node's ACL tags.")
  static final class Tag extends AdminCommand {
    @Parameters(paramLabel = "ID")
    long id;

    @Option(
        names = "--tag",
        paramLabel = "TAG",
        description = "tag:name; repeatable. The node gets exactly these tags.")
    List<String> tags = new ArrayList<>();

    @Option(names = "--clear", description = "Remove all of the node's tags.")
    boolean clear;

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      if (tags.isEmpty() && !clear)
        throw new AdminOptions.Failure("give at least one --tag, or --clear to remove all tags");
      if (!tags.isEmpty() && clear)
        throw new AdminOptions.Failure("--clear cannot be combined with --tag");
      JsonNode node = server.post("nodes/" + id + "/tags", Map.of("tags", tags));
      out.println(
          "node "
              + id
              + " ("
              + node.path("hostname").asText()
              + ") tags: "
              + (node.path("tags").isEmpty() ? "none" : joined(node.path("tags"))));
    }
  }
}
