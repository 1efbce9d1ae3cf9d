package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** `trellis metrics`: the running agent's metrics in Prometheus' text format. */
@Command(
    name = "metrics",
    mixinStandardHelpOptions = true,
    description = {
      "Print this node's metrics in Prometheus' text format: per peer bytes, handshake age, path"
          + " and round trip; drops by reason; relay reconnects (docs/METRICS.md).",
      "To have Prometheus scrape them, start the agent with --metrics-listen ADDR."
    })
public final class MetricsCommand implements Callable<Integer> {
  @Mixin AgentOptions agent;

  @Override
  public Integer call() {
    try {
      JsonNode reply = agent.call(agent.client().newRequest("metrics"));
      System.out.print(reply.path("text").asText());
      System.out.flush();
      return 0;
    } catch (AgentOptions.CliFailure e) {
      System.err.println("trellis: " + e.getMessage());
      return 1;
    }
  }
}
