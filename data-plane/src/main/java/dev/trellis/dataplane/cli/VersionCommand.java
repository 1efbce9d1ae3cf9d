package dev.trellis.dataplane.cli;

import picocli.CommandLine.Command;

/** `trellis version`: what `trellis --version` prints, as a command too (as tailscale has it). */
@Command(name = "version", mixinStandardHelpOptions = true, description = "Print the version.")
public final class VersionCommand implements Runnable {
  /** The one place the version is written; the root commands' --version reads it too. */
  public static final String VERSION = "trellis 0.1.0";

  @Override
  public void run() {
    System.out.println(VERSION);
  }
}
