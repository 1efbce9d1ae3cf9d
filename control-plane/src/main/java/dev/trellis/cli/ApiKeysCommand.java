package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** `trellis apikeys`: keys for the admin API. */
@Command(
    name = "apikeys",
    mixinStandardHelpOptions = true,
    description = "Manage admin API keys.",
    subcommands = {
      ApiKeysCommand.Create.class,
      ApiKeysCommand.ListKeys.class,
      ApiKeysCommand.Expire.class
    })
final class ApiKeysCommand extends AdminCommand.Group {

  @Command(
      name = "create",
      mixinStandardHelpOptions = true,
      description = "Create an API key. The key itself is printed once, as the last line.")
  static final class Create extends AdminCommand {
    @Option(
        names = "--expiration",
        paramLabel = "DURATION",
        description = "e.g. 90d, 24h or P90D (default: never).")
    String expiration;

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      Map<String, Object> body = new HashMap<>();
      body.put("expiration", expiration);
      JsonNode created = server.post("apikeys", body);
      JsonNode key = created.path("key");
      out.println(
          "created API key "
              + key.path("prefix").asText()
              + (key.hasNonNull("expiration")
                  ? ", expires " + time(key, "expiration")
                  : ", never expires"));
      out.println(created.path("secret").asText());
    }
  }

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description = "List API keys (never their secrets).")
  static final class ListKeys extends AdminCommand {
    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode keys = server.get("apikeys").path("apiKeys");
      if (json) {
        printJson(out, keys);
        return;
      }
      Instant now = Instant.now();
      List<String[]> rows = new ArrayList<>();
      rows.add(new String[] {"PREFIX", "STATUS", "EXPIRATION", "CREATED"});
      for (JsonNode k : keys) {
        boolean timedOut =
            k.hasNonNull("expiration")
                && !now.isBefore(Instant.parse(k.get("expiration").asText()));
        rows.add(
            new String[] {
              text(k, "prefix"),
              k.path("expired").asBoolean() || timedOut ? "expired" : "valid",
              k.hasNonNull("expiration") ? time(k, "expiration") : "never",
              time(k, "createdAt")
            });
      }
      printTable(out, rows);
    }
  }

  @Command(name = "expire", mixinStandardHelpOptions = true, description = "Expire an API key now.")
  static final class Expire extends AdminCommand {
    @Parameters(paramLabel = "PREFIX")
    String prefix;

    @Override
    void run(PrintWriter out) throws AdminOptions.Failure {
      server.post("apikeys/" + AdminOptions.segment(prefix) + "/expire", null);
      out.println("expired API key " + prefix);
    }
  }
}
