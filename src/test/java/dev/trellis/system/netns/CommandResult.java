package dev.trellis.system.netns;

import java.util.List;

/** Outcome of one finished command: its argument vector, exit status and captured output. */
public record CommandResult(List<String> argv, int exitCode, String stdout, String stderr) {

  public boolean ok() {
    return exitCode == 0;
  }

  /**
   * Throws {@link CommandFailedException} (carrying the output) unless the command exited with 0.
   */
  public CommandResult orThrow() {
    if (!ok()) {
      throw new CommandFailedException(describe("exited with " + exitCode));
    }
    return this;
  }

  String describe(String what) {
    return "command "
        + String.join(" ", argv)
        + " "
        + what
        + "\n--- stdout ---\n"
        + Commands.clip(stdout)
        + "\n--- stderr ---\n"
        + Commands.clip(stderr);
  }
}
