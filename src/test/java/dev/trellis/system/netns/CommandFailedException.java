package dev.trellis.system.netns;

/** A host command failed or timed out; the message carries its output. */
public final class CommandFailedException extends RuntimeException {
  public CommandFailedException(String message) {
    super(message);
  }
}
