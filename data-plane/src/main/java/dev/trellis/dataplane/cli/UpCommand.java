package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** `trellis up`: log the running agent in (or back in) and connect. */
@Command(
    name = "up",
    mixinStandardHelpOptions = true,
    description =
        "Log this node in to a Trellis coordination server and connect. Without --authkey, "
            + "resumes an existing registration (after trellis down, or a restart).")
public final class UpCommand implements Callable<Integer> {
  @Mixin AgentOptions agent;

  @Option(
      names = "--login-server",
      paramLabel = "URL",
      description =
          "Coordination server, e.g. https://trellis.example.com (default: the last one used).")
  String loginServer;

  @Option(
      names = "--authkey",
      paramLabel = "KEY",
      description = "Pre-auth key (needed for the first login and after logout or expiry).")
  String authKey;

  @Option(
      names = "--hostname",
      paramLabel = "NAME",
      description = "Name in the network (default: this machine's hostname).")
  String hostname;

  @Option(
      names = "--accept-dns",
      arity = "0..1",
      fallbackValue = "true",
      paramLabel = "true|false",
      description =
          "Point this host's resolver at the network's names (default: true, or what an earlier"
              + " up said; kept across restarts).")
  Boolean acceptDns;

  @Option(
      names = "--multicast",
      arity = "0..1",
      fallbackValue = "true",
      paramLabel = "true|false",
      description =
          "Take part in multicast over the network, e.g. ROS 2 discovery (default: false, or what"
              + " an earlier up said; kept across restarts).")
  Boolean multicast;

  @Override
  public Integer call() {
    ObjectNode request =
        agent
            .client()
            .newRequest("up")
            .put("loginServer", loginServer)
            .put("authKey", authKey)
            // None given: the agent keeps the registered name (the machine's at the first login).
            .put("hostname", hostname);
    if (acceptDns != null) request.put("acceptDns", acceptDns);
    if (multicast != null) request.put("multicast", multicast);
    try {
      // While the server cannot finish the login (a building was just lost), the agent keeps
      // trying and says so: one line per new message.
      Set<String> told = new HashSet<>();
      JsonNode self =
          agent
              .call(
                  request,
                  message -> {
                    if (told.add(message)) System.err.println("trellis: waiting: " + message);
                  })
              .path("self");
      if (self.isObject()) {
        List<String> addresses = new ArrayList<>();
        self.path("addresses").forEach(a -> addresses.add(a.asText()));
        System.out.println(
            "logged in as "
                + self.path("hostname").asText("?")
                + (addresses.isEmpty() ? "" : " (" + String.join(", ", addresses) + ")"));
      } else {
        System.out.println("up");
      }
      return 0;
    } catch (AgentOptions.CliFailure e) {
      System.err.println("trellis: " + e.getMessage());
      return 1;
    }
  }
}
