package dev.trellis.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The `trellis` command. Each subcommand is its own class next to this one. */
@Command(name = "trellis", mixinStandardHelpOptions = true, version = "trellis 0.1.0",
        description = "Self-hosted WireGuard overlay network for robot fleets.",
        subcommands = {ServerCommand.class, RelayCommand.class, PingCommand.class, NetcheckCommand.class, UsersCommand.class, AuthKeysCommand.class, NodesCommand.class, ApiKeysCommand.class, ClusterCommand.class, RelaysCommand.class, WgCommand.class,
                AgentCommand.class, UpCommand.class, DownCommand.class, LogoutCommand.class, IpCommand.class, StatusCommand.class,
                CommandLine.HelpCommand.class})
public final class Trellis implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

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
