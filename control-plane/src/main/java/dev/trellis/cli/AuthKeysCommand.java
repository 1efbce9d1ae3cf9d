package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** `trellis authkeys`: pre-auth keys that let machines join. */
@Command(
    name = "authkeys",
    mixinStandardHelpOptions = true,
    description = "Manage pre-auth keys that let machines register.",
    subcommands = {
      AuthKeysCommand.Create.class,
      AuthKeysCommand.ListKeys.class,
      AuthKeysCommand.Expire.class
    })
final class AuthKeysCommand extends AdminCommand.Group {

  @Command(
      name = "create",
      mixinStandardHelpOptions = true,
      description = "Create an auth key. The key itself is printed once, as the last line.")
  static final class Create extends AdminCommand {
    @Option(
        names = "--user",
        required = true,
        paramLabel = "USER",
        description = "User the machines will belong to.")
    String user;

    @Option(names = "--reusable", description = "Let any number of machines use the key.")
    boolean reusable;

    @Option(
        names = "--ephemeral",
        description = "Nodes registered with it are deleted after going offline.")
    boolean ephemeral;

    @Option(
        names = "--expiration",
        paramLabel = "DURATION",
        description = "e.g. 1h, 24h, 90d or PT24H (default: never).")
    String expiration;

    @Option(
        names = "--tag",
        paramLabel = "TAG",
        description = "ACL tag (tag:name) for nodes that use the key; repeatable.")
    List<String> tags = new ArrayList<>();

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      Map<String, Object> body = new LinkedHashMap<>();
      body.put("user", user);
      body.put("reusable", reusable);
      body.put("ephemeral", ephemeral);
      body.put("expiration", expiration);
      body.put("tags", tags);
      JsonNode created = server.post("authkeys", body);
      JsonNode key = created.path("key");
      out.println(
          "created auth key "
              + key.path("id").asText()
              + " for user "
              + key.path("user").asText()
              + ": "
              + (key.path("reusable").asBoolean() ? "reusable" : "single-use")
              + (key.path("ephemeral").asBoolean() ? ", ephemeral" : "")
              + (key.hasNonNull("expiration")
                  ? ", expires " + time(key, "expiration")
                  : ", never expires")
              + (key.path("tags").isEmpty() ? "" : ", tags " + joined(key.path("tags"))));
      out.println(created.path("secret").asText());
    }
  }

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description = "List auth keys (never their secrets).")
  static final class ListKeys extends AdminCommand {
    @Option(names = "--user", paramLabel = "USER", description = "Only this user's keys.")
    String user;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode keys =
          server
              .get("authkeys" + (user == null ? "" : "?user=" + AdminOptions.segment(user)))
              .path("authKeys");
      if (json) {
        printJson(out, keys);
        return;
      }
      Instant now = Instant.now();
      List<String[]> rows = new ArrayList<>();
      rows.add(
          new String[] {
            "ID", "USER", "REUSABLE", "EPHEMERAL", "USED", "STATUS", "EXPIRATION", "TAGS", "CREATED"
          });
      for (JsonNode k : keys) {
        rows.add(
            new String[] {
              text(k, "id"),
              text(k, "user"),
              yesNo(k, "reusable"),
              yesNo(k, "ephemeral"),
              yesNo(k, "used"),
              status(k, now),
              k.hasNonNull("expiration") ? time(k, "expiration") : "never",
              joined(k.path("tags")),
              time(k, "createdAt")
            });
      }
      printTable(out, rows);
    }

    private static String status(JsonNode key, Instant now) {
      boolean timedOut =
          key.hasNonNull("expiration")
              && !now.isBefore(Instant.parse(key.get("expiration").asText()));
      if (key.path("expired").asBoolean() || timedOut) return "expired";
      if (!key.path("reusable").asBoolean() && key.path("used").asBoolean()) return "used";
      return "valid";
    }
  }

  @Command(
      name = "expire",
      mixinStandardHelpOptions = true,
      description = "Expire an auth key now.")
  static final class Expire extends AdminCommand {
    @Parameters(paramLabel = "ID")
    String id;

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      server.post("authkeys/" + AdminOptions.segment(id) + "/expire", null);
      out.println("expired auth key " + id);
    }
  }
}
