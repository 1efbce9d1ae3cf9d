package dev.trellis.dataplane.cli;

/**
 * The node commands' log level, from {@code LOG_LEVEL} as wireguard-go reads it ({@code debug},
 * {@code verbose}, {@code info}, {@code error}, {@code silent}). Logging goes through SLF4J to
 * logback ({@code logback.xml}: one line per event on stderr); this sets the level logback.xml
 * reads, so it must run before the first logger is made.
 */
final class NodeLogging {
  /** The system property logback.xml reads for the {@code dev.trellis} loggers. */
  static final String LEVEL_PROPERTY = "trellis.log.level";

  private NodeLogging() {}

  static void configure(String defaultLevel) {
    String level =
        switch (System.getenv().getOrDefault("LOG_LEVEL", defaultLevel).toLowerCase()) {
          case "debug", "verbose" -> "DEBUG";
          case "info" -> "INFO";
          case "error", "warning", "warn" -> "WARN";
          case "silent" -> "OFF";
          default -> defaultLevel.toUpperCase();
        };
    System.setProperty(LEVEL_PROPERTY, level);
  }
}
