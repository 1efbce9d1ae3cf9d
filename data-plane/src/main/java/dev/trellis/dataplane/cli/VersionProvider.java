package dev.trellis.dataplane.cli;

import picocli.CommandLine.IVersionProvider;

/** `--version` of the root commands: {@link VersionCommand#VERSION}. */
public final class VersionProvider implements IVersionProvider {
  @Override
  public String[] getVersion() {
    return new String[] {VersionCommand.VERSION};
  }
}
