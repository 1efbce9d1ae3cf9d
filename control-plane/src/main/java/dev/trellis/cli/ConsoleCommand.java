package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.util.Map;
import picocli.CommandLine.Command;

/** `trellis console`: a one-time login link to the web console. */
@Command(
    name = "console",
    mixinStandardHelpOptions = true,
    description = {
      "Print a one-time login link to the web console (/console/ on the server's HTTP port).",
      "The link works once, within 5 minutes, and logs the browser in for 12 hours. Run it on the"
          + " server host (it uses the server's API key from the data directory), or anywhere"
          + " with --server and --api-key."
    })
final class ConsoleCommand extends AdminCommand {
  @Override
  void run(PrintWriter out) throws Exception {
    JsonNode link = server.post("console/links", Map.of());
    out.println(link.path("url").asText());
    out.println(
        "(valid once, for "
            + link.path("expiresInSeconds").asLong() / 60
            + " minutes; open it in a browser that reaches this address)");
  }
}
