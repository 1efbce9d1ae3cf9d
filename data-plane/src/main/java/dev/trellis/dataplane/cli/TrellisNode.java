package dev.trellis.dataplane.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The node's `trellis` command: what a robot or laptop runs (the agent, `wg` and the commands that
 * talk to the agent), without the server's libraries. The full `trellis` command registers the same
 * subcommands next to the server's.
 */
@Command(
    name = "trellis",
    mixinStandardHelpOptions = true,
    versionProvider = VersionProvider.class,
    description = "Trellis node: the agent and the commands that talk to it.",
    subcommands = {
      AgentCommand.class,
      UpCommand.class,
      DownCommand.class,
      LogoutCommand.class,
      IpCommand.class,
      StatusCommand.class,
      PingCommand.class,
      NetcheckCommand.class,
      MetricsCommand.class,
      WgCommand.class,
      VersionCommand.class,
      AotTraining.class,
      CommandLine.HelpCommand.class
    })
public final class TrellisNode implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(System.out);
  }

  public static void main(String[] args) {
    System.exit(new CommandLine(new TrellisNode()).execute(args));
  }
}
