package dev.trellis.cli;

import dev.trellis.dataplane.cli.AgentCommand;
import dev.trellis.dataplane.cli.DownCommand;
import dev.trellis.dataplane.cli.IpCommand;
import dev.trellis.dataplane.cli.LogoutCommand;
import dev.trellis.dataplane.cli.MetricsCommand;
import dev.trellis.dataplane.cli.NetcheckCommand;
import dev.trellis.dataplane.cli.PingCommand;
import dev.trellis.dataplane.cli.StatusCommand;
import dev.trellis.dataplane.cli.UpCommand;
import dev.trellis.dataplane.cli.VersionCommand;
import dev.trellis.dataplane.cli.VersionProvider;
import dev.trellis.dataplane.cli.WgCommand;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The full `trellis` command: the server's subcommands (each its own class next to this one) and
 * the node's (in {@code dev.trellis.dataplane.cli}, which also has the node-only root command).
 */
@Command(
    name = "trellis",
    mixinStandardHelpOptions = true,
    versionProvider = VersionProvider.class,
    description = "Self-hosted WireGuard overlay network for robot fleets.",
    subcommands = {
      ServerCommand.class,
      RelayCommand.class,
      UsersCommand.class,
      AuthKeysCommand.class,
      NodesCommand.class,
      ApiKeysCommand.class,
      ClusterCommand.class,
      RelaysCommand.class,
      QualityCommand.class,
      ConsoleCommand.class,
      PolicyCommand.class,
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
      CommandLine.HelpCommand.class
    })
public final class Trellis implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(System.out);
  }

  public static void main(String[] args) {
    // SLF4J reports on stderr that it replayed calls made while logback started: noise to a user.
    System.setProperty("slf4j.internal.verbosity", "ERROR");
    System.exit(new CommandLine(new Trellis()).execute(args));
  }
}
