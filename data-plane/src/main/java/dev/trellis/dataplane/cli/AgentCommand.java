package dev.trellis.dataplane.cli;

import dev.trellis.dataplane.agent.AgentDaemon;
import dev.trellis.dataplane.metrics.MetricsEndpoint;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** `trellis agent`: the node daemon, in the foreground (run it under systemd or similar). */
@Command(
    name = "agent",
    mixinStandardHelpOptions = true,
    description = {
      "Run the Trellis node agent in the foreground: creates the WireGuard interface, "
          + "logs in to the coordination server (see trellis up) and keeps peers, addresses and routes in sync.",
      "Environment: TRELLIS_STATE_DIR, LOG_LEVEL=debug|info|error (default info)."
    })
public final class AgentCommand implements Callable<Integer> {
  @Mixin AgentOptions agent;

  @Option(
      names = "--interface",
      paramLabel = "NAME",
      defaultValue = AgentDaemon.DEFAULT_INTERFACE,
      description = "Interface name (default: ${DEFAULT-VALUE}).")
  String interfaceName;

  @Option(
      names = "--port",
      paramLabel = "PORT",
      defaultValue = "" + AgentDaemon.DEFAULT_PORT,
      description = "WireGuard UDP listen port, 0 for a random one (default: ${DEFAULT-VALUE}).")
  int port;

  @Option(
      names = "--metrics-listen",
      paramLabel = "ADDR",
      description =
          "Serve the node's metrics for Prometheus at http://ADDR/metrics, e.g. 127.0.0.1:9101"
              + " (default: not served; `trellis metrics` prints them either way).")
  String metricsListen;

  @Override
  public Integer call() throws Exception {
    if (interfaceName.isEmpty() || interfaceName.length() > 15 || interfaceName.contains("/")) {
      System.err.println(
          "trellis agent: interface name must be 1 to 15 characters without '/': '"
              + interfaceName
              + "'");
      return 1;
    }
    if (port < 0 || port > 65535) {
      System.err.println("trellis agent: port must be 0-65535, got " + port);
      return 1;
    }
    if (metricsListen != null) {
      try {
        MetricsEndpoint.parse(metricsListen, "--metrics-listen");
      } catch (IllegalArgumentException e) {
        System.err.println("trellis agent: " + e.getMessage());
        return 1;
      }
    }
    NodeLogging.configure("info");
    try {
      AgentDaemon.run(
          new AgentDaemon.Options(agent.directory(), interfaceName, port, metricsListen));
      return 0;
    } catch (AgentDaemon.StartFailure e) {
      System.err.println("trellis agent: " + e.getMessage());
      return 1;
    }
  }
}
