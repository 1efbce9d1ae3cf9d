package dev.trellis.system.netns;

import java.util.Locale;

/**
 * Measured figures, printed with a fixed prefix so they can be grepped out of the surefire output
 * files.
 */
public final class Metrics {
  public static final String PREFIX = "[trellis-netns-metric]";

  private Metrics() {}

  public static void report(String format, Object... args) {
    System.out.println(PREFIX + " " + String.format(Locale.ROOT, format, args));
  }
}
