package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** `trellis logout`: give up the registration; coming back needs an auth key. */
@Command(
    name = "logout",
    mixinStandardHelpOptions = true,
    description = "Disconnect and log this node out; logging in again needs an auth key.")
public final class LogoutCommand implements Callable<Integer> {
  @Mixin AgentOptions agent;

  @Override
  public Integer call() {
    try {
      JsonNode reply = agent.call(agent.client().newRequest("logout"));
      if (reply.hasNonNull("warning")) {
        System.err.println("trellis: warning: " + reply.get("warning").asText());
      }
      System.out.println(
          "logged out; this node's peers, addresses and routes are gone, and logging in again needs an auth key");
      return 0;
    } catch (AgentOptions.CliFailure e) {
      System.err.println("trellis: " + e.getMessage());
      return 1;
    }
  }
}
