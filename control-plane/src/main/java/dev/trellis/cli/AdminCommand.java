package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.dataplane.cli.TextTable;
import dev.trellis.proto.control.ControlJson;
import java.io.PrintWriter;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * Base of every admin subcommand: finds the server, runs, and turns a failure into one line on
 * stderr and exit status 1. Output goes through picocli's writers so callers can capture it.
 */
@Command
abstract class AdminCommand implements Callable<Integer> {
  @Mixin AdminOptions server;

  @Spec CommandSpec spec;

  abstract void run(PrintWriter out) throws AdminOptions.Failure, Exception;

  @Override
  public final Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    try {
      run(out);
      return 0;
    } catch (AdminOptions.Failure e) {
      PrintWriter err = spec.commandLine().getErr();
      err.println("trellis: " + e.getMessage());
      err.flush();
      return 1;
    } finally {
      out.flush();
    }
  }

  static void printJson(PrintWriter out, JsonNode node) throws Exception {
    out.println(ControlJson.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(node));
  }

  /** Aligned columns, two spaces apart; the first row is the header. */
  static void printTable(PrintWriter out, List<String[]> rows) {
    out.print(TextTable.render(rows));
  }

  static String text(JsonNode node, String field) {
    JsonNode value = node.get(field);
    return value == null || value.isNull() ? "-" : value.asText();
  }

  /** An ISO timestamp to the second, for tables; "-" when absent. */
  static String time(JsonNode node, String field) {
    JsonNode value = node.get(field);
    if (value == null || !value.isTextual()) return "-";
    try {
      return Instant.parse(value.asText()).truncatedTo(ChronoUnit.SECONDS).toString();
    } catch (DateTimeParseException e) {
      return value.asText();
    }
  }

  static String yesNo(JsonNode node, String field) {
    return node.path(field).asBoolean() ? "yes" : "no";
  }

  static String joined(JsonNode array) {
    List<String> parts = new ArrayList<>();
    array.forEach(a -> parts.add(a.asText()));
    return parts.isEmpty() ? "-" : String.join(",", parts);
  }

  /** Prints a group's usage when it is run without a subcommand. */
  @Command
  abstract static class Group implements Runnable {
    @Spec CommandSpec spec;

    @Override
    public void run() {
      spec.commandLine().usage(spec.commandLine().getOut());
    }
  }
}
