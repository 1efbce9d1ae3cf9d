package dev.trellis.control.policy;

/**
 * A policy that cannot be used: malformed, naming something unknown or unsupported, or failing its
 * own tests. {@code line} is where in the file (1-based; 0 when not tied to a line).
 */
public final class PolicyException extends Exception {
  private final int line;

  public PolicyException(int line, String problem) {
    super(line > 0 ? "line " + line + ": " + problem : problem);
    this.line = line;
  }

  public int line() {
    return line;
  }
}
