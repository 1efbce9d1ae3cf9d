package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.dataplane.agent.LocalApiClient;
import dev.trellis.proto.control.ControlJson;
import java.io.IOException;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** `trellis ping PEER`: path-discovery pings, each reply with the path it took and its RTT. */
@Command(
    name = "ping",
    mixinStandardHelpOptions = true,
    description =
        "Ping a peer at the Trellis level and show the path each reply took (via relay or via IP:PORT).")
public final class PingCommand implements Callable<Integer> {
  @Mixin AgentOptions agent;

  @Option(
      names = {"-c", "--count"},
      description = "Number of pings (default 4).")
  int count = 4;

  @Parameters(index = "0", paramLabel = "PEER", description = "Peer hostname or overlay address.")
  String peer;

  @Override
  public Integer call() throws Exception {
    if (count < 1) {
      System.err.println("trellis: --count must be at least 1");
      return 1;
    }
    LocalApiClient client = agent.client();
    int answered = 0;
    for (int i = 0; i < count; i++) {
      ObjectNode request =
          ControlJson.MAPPER.createObjectNode().put("command", "ping").put("peer", peer);
      JsonNode reply;
      try {
        reply = client.call(request);
      } catch (IOException e) {
        System.err.println("trellis: " + e.getMessage());
        return 1;
      }
      if (reply.path("ok").asBoolean()) {
        answered++;
        String path = reply.path("path").asText();
        double ms = reply.path("rttNanos").asLong() / 1e6;
        System.out.printf("pong from %s via %s in %.2f ms%n", peer, path, ms);
      } else {
        System.out.println("no pong from " + peer + ": " + reply.path("error").asText());
      }
      if (i + 1 < count) {
        Thread.sleep(1000);
      }
    }
    return answered > 0 ? 0 : 1;
  }
}
