package dev.trellis.system.netns;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** iperf3 TCP runs between namespaces, with the JSON report parsed. */
public final class Iperf {
  public static final int PORT = 5201;

  private Iperf() {}

  /** Figures from {@code end.sum_received} / {@code end.sum_sent} of an iperf3 -J report. */
  public record Result(long bytesReceived, double bitsPerSecond, long retransmits) {
    public double mbps() {
      return bitsPerSecond / 1e6;
    }
  }

  /**
   * Starts a one-shot server ({@code iperf3 -s -1}) as a tracked process and waits until it
   * listens.
   */
  public static HostProcess server(NetworkNamespace ns) {
    HostProcess server =
        ns.start(
            "iperf3-server",
            Map.of(),
            Tools.require("iperf3"),
            "-s",
            "-1",
            "-p",
            Integer.toString(PORT));
    Await.until(
        "iperf3 server listening on port " + PORT + " in " + ns,
        Duration.ofSeconds(10),
        () -> {
          if (!server.isAlive()) {
            throw new AssertionError("iperf3 server exited early:\n" + server.output());
          }
          return !ns.run(Tools.require("ss"), "-Hltn", "sport", "=", ":" + PORT).stdout().isBlank();
        });
    return server;
  }

  static String[] clientArgs(String serverAddress, int seconds, boolean reverse) {
    List<String> argv =
        new ArrayList<>(
            List.of(
                Tools.require("iperf3"),
                "-c",
                serverAddress,
                "-p",
                Integer.toString(PORT),
                "-t",
                Integer.toString(seconds),
                "-J",
                "--connect-timeout",
                "5000"));
    if (reverse) {
      argv.add("-R");
    }
    return argv.toArray(String[]::new);
  }

  /**
   * Runs a TCP test from {@code client} to a fresh server in {@code server}; throws unless iperf3
   * exits 0.
   */
  public static Result tcp(
      NetworkNamespace server,
      NetworkNamespace client,
      String serverAddress,
      int seconds,
      boolean reverse) {
    HostProcess srv = server(server);
    CommandResult r =
        client.run(
            Map.of(),
            Duration.ofSeconds(seconds + 30),
            clientArgs(serverAddress, seconds, reverse));
    if (!r.ok()) {
      throw new AssertionError(
          "iperf3 client failed (exit "
              + r.exitCode()
              + "):\n"
              + Commands.clip(r.stdout())
              + "\n"
              + Commands.clip(r.stderr())
              + "\nserver:\n"
              + Commands.clip(srv.output()));
    }
    srv.waitFor(Duration.ofSeconds(5));
    return parse(r.stdout());
  }

  /** Starts a client in the background (its JSON report lands in the process log). */
  public static HostProcess tcpAsync(
      NetworkNamespace client, String serverAddress, int seconds, boolean reverse) {
    return client.start("iperf3-client", Map.of(), clientArgs(serverAddress, seconds, reverse));
  }

  /** Parses an iperf3 -J report (tolerating stray text around the JSON object). */
  public static Result parse(String output) {
    int from = output.indexOf('{');
    int to = output.lastIndexOf('}');
    if (from < 0 || to < from) {
      throw new AssertionError("no JSON in iperf3 output:\n" + Commands.clip(output));
    }
    Object json = Json.parse(output.substring(from, to + 1));
    Object error = Json.at(json, "error");
    if (error != null) {
      throw new AssertionError("iperf3 reported an error: " + error);
    }
    long bytes = (long) Json.number(json, "end", "sum_received", "bytes");
    double bps = Json.number(json, "end", "sum_received", "bits_per_second");
    Object retr = Json.at(json, "end", "sum_sent", "retransmits");
    return new Result(bytes, bps, retr instanceof Double d ? d.longValue() : -1);
  }
}
