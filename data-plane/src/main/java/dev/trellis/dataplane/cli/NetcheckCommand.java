package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** `trellis netcheck`: does UDP work, what is our reflexive address, how far is the relay. */
@Command(
    name = "netcheck",
    mixinStandardHelpOptions = true,
    description =
        "Report whether UDP reaches the server (STUN), this host's reflexive address, and the latency to each relay region.")
public final class NetcheckCommand implements Callable<Integer> {
  @Mixin AgentOptions agent;

  @Option(names = "--json", description = "Print JSON.")
  boolean json;

  @Override
  public Integer call() {
    JsonNode reply;
    try {
      reply = agent.call(agent.client().newRequest("netcheck"));
    } catch (AgentOptions.CliFailure e) {
      System.err.println("trellis: " + e.getMessage());
      return 1;
    }
    JsonNode r = reply.path("report");
    if (json) {
      System.out.println(r.toPrettyString());
      return 0;
    }
    System.out.println(
        "UDP: " + (r.path("udp").asBoolean() ? "yes" : "no (" + r.path("udpError").asText() + ")"));
    System.out.println(
        "reflexive address: "
            + (r.path("reflexiveAddress").isNull() ? "-" : r.path("reflexiveAddress").asText()));
    String home = r.path("homeRelay").isNull() ? null : r.path("homeRelay").asText();
    if (r.path("relays").isEmpty()) {
      System.out.println("relays: none known (not logged in?)");
    }
    for (JsonNode relay : r.path("relays")) {
      String region = relay.path("region").asText();
      String latency =
          relay.path("latencyMillis").isNull()
              ? "unreachable (" + relay.path("error").asText() + ")"
              : String.format(Locale.ROOT, "%.1f ms", relay.path("latencyMillis").asDouble());
      System.out.println(
          "relay "
              + region
              + " ("
              + relay.path("url").asText()
              + "): "
              + latency
              + (region.equals(home) ? "  <- home" : ""));
    }
    return 0;
  }
}
