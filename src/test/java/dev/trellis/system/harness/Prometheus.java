package dev.trellis.system.harness;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.dataplane.metrics.MetricsEndpoint;
import dev.trellis.system.netns.CommandResult;
import dev.trellis.system.netns.Commands;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Tools;
import java.io.IOException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.OptionalDouble;

/**
 * Prometheus' own tools from Debian's {@code prometheus} package: {@code promtool check metrics} on
 * an exposition, and a real Prometheus server scraping a target inside a namespace. CI unpacks the
 * package under {@link #UNPACKED} (not installed: installing would start a Prometheus service on
 * the machine); a {@code promtool} on PATH does too.
 */
public final class Prometheus {
  /** Where .ci/run unpacks Debian's prometheus package. */
  public static final Path UNPACKED = Path.of("/opt/trellis-test/prometheus/usr/bin");

  private Prometheus() {}

  /** The binary {@code name} ("promtool", "prometheus"); fails with what to install. */
  public static String binary(String name) {
    Path unpacked = UNPACKED.resolve(name);
    if (Files.isExecutable(unpacked)) {
      return unpacked.toString();
    }
    String found = Tools.find(name);
    if (found == null) {
      throw new IllegalStateException(
          name
              + " not found in "
              + UNPACKED
              + " or PATH; .ci/run unpacks Debian's prometheus package there (apt-get download"
              + " prometheus; dpkg-deb -x prometheus_*.deb /opt/trellis-test/prometheus)");
    }
    return found;
  }

  /** {@code promtool check metrics} on {@code exposition}; its verdict, with what it printed. */
  public static CommandResult check(String exposition) {
    return Commands.run(
        List.of(binary("promtool"), "check", "metrics"),
        Map.of(),
        exposition,
        Commands.DEFAULT_TIMEOUT);
  }

  /** GET {@code url} from inside {@code ns} (curl); the body, or a failure naming the URL. */
  public static String fetch(NetworkNamespace ns, String url) {
    CommandResult r = ns.run(Tools.require("curl"), "-sS", "-f", "--max-time", "10", url);
    if (!r.ok()) {
      throw new AssertionError("GET " + url + " in " + ns + " failed: " + r.stderr());
    }
    return r.stdout();
  }

  /** The value of one sample, {@code series} written as exposed (name and labels), if present. */
  public static OptionalDouble sample(String exposition, String series) {
    return MetricsEndpoint.sample(exposition, series);
  }

  /**
   * A Prometheus server in {@code ns} on 127.0.0.1:{@code port}, scraping {@code target}
   * (HOST:PORT, path /metrics) every second as job "trellis". Stopped with the namespace's
   * processes.
   */
  public static Server start(NetworkNamespace ns, String target, int port) throws IOException {
    Path dir = Files.createTempDirectory("trellis-prometheus");
    Path config = dir.resolve("prometheus.yml");
    Files.writeString(
        config,
        """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: trellis
            static_configs:
              - targets: ["%s"]
        """
            .formatted(target));
    HostProcess p =
        ns.start(
            "prometheus",
            Map.of(),
            binary("prometheus"),
            "--config.file=" + config,
            "--storage.tsdb.path=" + dir.resolve("data"),
            "--web.listen-address=127.0.0.1:" + port);
    return new Server(ns, port, p);
  }

  /** A running Prometheus, queried through its HTTP API from inside its namespace. */
  public record Server(NetworkNamespace ns, int port, HostProcess process) {
    /** The first value of an instant query's result, if it has one. */
    public OptionalDouble query(String promql) {
      String body;
      try {
        body =
            fetch(
                ns,
                "http://127.0.0.1:"
                    + port
                    + "/api/v1/query?query="
                    + URLEncoder.encode(promql, StandardCharsets.UTF_8));
      } catch (AssertionError notYet) {
        return OptionalDouble.empty(); // still starting
      }
      JsonNode result = TrellisAgentProcess.parse(body).path("data").path("result");
      if (!result.isArray() || result.isEmpty()) {
        return OptionalDouble.empty();
      }
      return OptionalDouble.of(Double.parseDouble(result.get(0).path("value").get(1).asText()));
    }
  }
}
