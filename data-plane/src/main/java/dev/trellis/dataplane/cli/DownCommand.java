package dev.trellis.dataplane.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** `trellis down`: disconnect, keep the registration (trellis up resumes without a key). */
@Command(
    name = "down",
    mixinStandardHelpOptions = true,
    description =
        "Disconnect from the network: removes peers, addresses and routes, keeps this node's registration.")
public final class DownCommand implements Callable<Integer> {
  @Mixin AgentOptions agent;

  @Override
  public Integer call() {
    try {
      agent.call(agent.client().newRequest("down"));
      return 0;
    } catch (AgentOptions.CliFailure e) {
      System.err.println("trellis: " + e.getMessage());
      return 1;
    }
  }
}
