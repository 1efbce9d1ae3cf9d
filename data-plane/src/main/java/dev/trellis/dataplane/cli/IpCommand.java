package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** `trellis ip [-4|-6] [PEER]`: this node's overlay addresses, or a peer's. */
@Command(
    name = "ip",
    mixinStandardHelpOptions = true,
    description =
        "Print this node's Trellis addresses, or those of the peer with hostname PEER, one per line.")
public final class IpCommand implements Callable<Integer> {
  @Mixin AgentOptions agent;

  static final class Family {
    @Option(names = "-4", description = "Only the IPv4 address.")
    boolean v4;

    @Option(names = "-6", description = "Only the IPv6 address.")
    boolean v6;
  }

  @ArgGroup(exclusive = true)
  Family family;

  @Parameters(index = "0", arity = "0..1", paramLabel = "PEER", description = "A peer's hostname.")
  String peer;

  @Override
  public Integer call() {
    ObjectNode request = agent.client().newRequest("ip");
    if (peer != null) {
      request.put("peer", peer);
    }
    try {
      JsonNode reply = agent.call(request);
      int printed = 0;
      for (JsonNode a : reply.path("addresses")) {
        String address = a.asText();
        boolean v6 = address.contains(":");
        if (family != null && ((family.v4 && v6) || (family.v6 && !v6))) {
          continue;
        }
        System.out.println(address);
        printed++;
      }
      if (printed == 0) {
        System.err.println(
            "trellis: no "
                + (family != null && family.v4 ? "IPv4 " : family != null ? "IPv6 " : "")
                + "address"
                + (peer == null ? "" : " for " + peer));
        return 1;
      }
      return 0;
    } catch (AgentOptions.CliFailure e) {
      System.err.println("trellis: " + e.getMessage());
      return 1;
    }
  }
}
