package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.proto.control.ControlJson;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** `trellis status`: this node and its peers, as a table or as JSON. */
@Command(
    name = "status",
    mixinStandardHelpOptions = true,
    description =
        "Show this node's state and its peers: addresses, online, last seen, path (direct IP:PORT or relay REGION), last handshake.")
public final class StatusCommand implements Callable<Integer> {
  @Mixin AgentOptions agent;

  @Option(names = "--json", description = "Print the agent's status as JSON.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    JsonNode status;
    try {
      status = agent.call(agent.client().newRequest("status"));
    } catch (AgentOptions.CliFailure e) {
      System.err.println("trellis: " + e.getMessage());
      return 1;
    }
    ((ObjectNode) status).remove("ok");
    if (json) {
      System.out.println(
          ControlJson.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(status));
      return 0;
    }
    System.out.print(table(status, Instant.now()));
    return 0;
  }

  static String table(JsonNode status, Instant now) {
    StringBuilder out = new StringBuilder();
    String backend = status.path("backendState").asText();
    JsonNode self = status.path("self");
    out.append(
        switch (backend) {
          case "NeedsLogin" ->
              "Logged out; log in with: trellis up --login-server URL --authkey KEY\n";
          case "Stopped" -> "Stopped; connect with: trellis up\n";
          default ->
              status.path("connected").asBoolean()
                  ? ""
                  : "Not connected to "
                      + status.path("loginServer").asText("the server")
                      + "; retrying (peers keep working)\n";
        });
    boolean troubled = !"Running".equals(backend) || !status.path("connected").asBoolean();
    if (troubled && status.hasNonNull("lastError")) {
      out.append("# ").append(status.path("lastError").asText()).append('\n');
    }
    List<String[]> rows = new ArrayList<>();
    rows.add(
        new String[] {"HOSTNAME", "ADDRESSES", "ONLINE", "LAST SEEN", "PATH", "LAST HANDSHAKE"});
    rows.add(
        new String[] {
          self.path("hostname").asText("-") + " (this node)",
          join(self.path("addresses")),
          self.path("online").asBoolean() ? "yes" : "no",
          "-",
          "-",
          "-"
        });
    for (JsonNode peer : status.path("peers")) {
      rows.add(
          new String[] {
            peer.path("hostname").asText("-"),
            join(peer.path("addresses")),
            peer.path("online").asBoolean() ? "yes" : "no",
            peer.path("online").asBoolean() ? "now" : TextTable.ago(peer.path("lastSeen"), now),
            path(peer),
            TextTable.ago(peer.path("lastHandshake"), now)
          });
    }
    out.append(TextTable.render(rows));
    out.append(filterLine(status.path("filter")));
    out.append(namesLine(status.path("names")));
    out.append(multicastLine(status.path("multicast")));
    return out.toString();
  }

  /**
   * "# multicast: to N peers (S sent, R received, D dropped)" when the node takes part in
   * multicast, or something was dropped; nothing otherwise.
   */
  static String multicastLine(JsonNode multicast) {
    long dropped = 0;
    for (JsonNode n : multicast.path("dropped")) dropped += n.asLong();
    if (!multicast.path("member").asBoolean() && dropped == 0) {
      return "";
    }
    return "# multicast: "
        + (multicast.path("member").asBoolean()
            ? "to " + multicast.path("peers").asInt() + " peers"
            : "off")
        + " ("
        + multicast.path("sent").asLong()
        + " sent, "
        + multicast.path("received").asLong()
        + " received, "
        + dropped
        + " dropped)\n";
  }

  /**
   * "# names: HOSTNAME.DOMAIN via systemd-resolved (N answered, M forwarded, K dropped)" when names
   * are on.
   */
  static String namesLine(JsonNode names) {
    if (!names.path("domain").isTextual()) {
      return "";
    }
    long dropped =
        names.path("malformed").asLong()
            + names.path("oversized").asLong()
            + names.path("foreign").asLong();
    return "# names: every peer is also HOSTNAME."
        + names.path("domain").asText()
        + switch (names.path("mode").asText("")) {
          case "resolved" -> " via systemd-resolved";
          case "file" -> " via /etc/resolv.conf";
          default -> "";
        }
        + " ("
        + names.path("answered").asLong()
        + " answered, "
        + names.path("forwarded").asLong()
        + " forwarded, "
        + dropped
        + " dropped)\n";
  }

  /**
   * "# packet filter: N rules, M inbound packets dropped (no-rule X, ...)" when a policy is in
   * force or something was dropped; nothing otherwise.
   */
  static String filterLine(JsonNode filter) {
    boolean policy = filter.path("policy").asBoolean();
    long dropped = filter.path("dropped").asLong();
    if (!policy && dropped == 0) {
      return "";
    }
    StringBuilder line = new StringBuilder("# packet filter: ");
    line.append(policy ? filter.path("rules").asInt() + " rules" : "no policy");
    line.append(", ").append(dropped).append(" inbound packets dropped");
    List<String> reasons = new ArrayList<>();
    filter
        .path("droppedBy")
        .properties()
        .forEach(
            e -> {
              if (e.getValue().asLong() > 0) {
                reasons.add(e.getKey() + " " + e.getValue().asLong());
              }
            });
    if (!reasons.isEmpty()) {
      line.append(" (").append(String.join(", ", reasons)).append(')');
    }
    return line.append('\n').toString();
  }

  /**
   * How packets to the peer go now: "direct IP:PORT" or "relay REGION"; "-" before there is either
   * (no relay connected and no endpoint known).
   */
  static String path(JsonNode peer) {
    String relay = peer.path("relay").asText(null);
    if ("relay".equals(peer.path("path").asText()) && relay != null) {
      return "relay " + relay;
    }
    String endpoint = peer.path("endpoint").asText(null);
    if (endpoint == null && !peer.path("endpoints").isEmpty()) {
      endpoint = peer.path("endpoints").get(0).asText();
    }
    return endpoint == null ? "-" : "direct " + endpoint;
  }

  private static String join(JsonNode array) {
    List<String> parts = new ArrayList<>();
    array.forEach(a -> parts.add(a.asText()));
    return parts.isEmpty() ? "-" : String.join(",", parts);
  }
}
