package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** `trellis users`: create, list and delete users. */
@Command(
    name = "users",
    mixinStandardHelpOptions = true,
    description = "Manage users (the owners of nodes and auth keys).",
    subcommands = {
      UsersCommand.Create.class,
      UsersCommand.ListUsers.class,
      UsersCommand.Delete.class
    })
final class UsersCommand extends AdminCommand.Group {

  @Command(name = "create", mixinStandardHelpOptions = true, description = "Create a user.")
  static final class Create extends AdminCommand {
    @Parameters(paramLabel = "NAME", description = "1-63 characters of a-z 0-9 . _ @ -")
    String name;

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      JsonNode user = server.post("users", Map.of("name", name));
      out.println(
          "created user " + user.path("name").asText() + " (id " + user.path("id").asLong() + ")");
    }
  }

  @Command(name = "list", mixinStandardHelpOptions = true, description = "List users.")
  static final class ListUsers extends AdminCommand {
    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode users = server.get("users").path("users");
      if (json) {
        printJson(out, users);
        return;
      }
      List<String[]> rows = new ArrayList<>();
      rows.add(new String[] {"ID", "NAME", "NODES", "CREATED"});
      for (JsonNode u : users) {
        rows.add(
            new String[] {
              text(u, "id"), text(u, "name"), text(u, "nodeCount"), time(u, "createdAt")
            });
      }
      printTable(out, rows);
    }
  }

  @Command(
      name = "delete",
      mixinStandardHelpOptions = true,
      description = "Delete a user that owns no nodes.")
  static final class Delete extends AdminCommand {
    @Parameters(paramLabel = "NAME")
    String name;

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      server.delete("users/" + AdminOptions.segment(name));
      out.println("deleted user " + name);
    }
  }
}
