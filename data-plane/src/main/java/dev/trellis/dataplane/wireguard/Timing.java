package dev.trellis.dataplane.wireguard;

import java.time.Duration;

/**
 * WireGuard's protocol timers and message limits (whitepaper section 6), in nanoseconds. One place
 * names them; {@link #fromEnvironment()} lets tests shorten REKEY_AFTER_TIME through {@value
 * #REKEY_OVERRIDE_VARIABLE} so a rekey test need not wait two minutes.
 */
public record Timing(
    long rekeyAfterTime,
    long rejectAfterTime,
    long rekeyAttemptTime,
    long rekeyTimeout,
    long rekeyTimeoutJitterMax,
    long keepaliveTimeout,
    long rekeyAfterMessages,
    long rejectAfterMessages) {
  public static final String REKEY_OVERRIDE_VARIABLE = "TRELLIS_WG_REKEY_AFTER_SECONDS";

  public static final Timing DEFAULT =
      new Timing(
          nanos(Duration.ofSeconds(120)),
          nanos(Duration.ofSeconds(180)),
          nanos(Duration.ofSeconds(90)),
          nanos(Duration.ofSeconds(5)),
          nanos(Duration.ofMillis(334)),
          nanos(Duration.ofSeconds(10)),
          1L << 60,
          -(1L << 13) - 1); // 2^64 - 2^13 - 1 as an unsigned 64-bit value

  /** Handshake retries before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT - 1. */
  public int maxHandshakeAttempts() {
    return (int) (rekeyAttemptTime / rekeyTimeout) - 1;
  }

  /** Keys are wiped after this long without a new handshake. */
  public long zeroKeysAfter() {
    return rejectAfterTime * 3;
  }

  /** A receiving initiator rekeys this long before its session would be rejected. */
  public long rekeyOnReceiveAge() {
    return rejectAfterTime - keepaliveTimeout - rekeyTimeout;
  }

  public static Timing fromEnvironment() {
    String rekey = System.getenv(REKEY_OVERRIDE_VARIABLE);
    if (rekey == null || rekey.isBlank()) {
      return DEFAULT;
    }
    long seconds;
    try {
      seconds = Long.parseLong(rekey.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(
          REKEY_OVERRIDE_VARIABLE + " must be a whole number of seconds, got '" + rekey + "'");
    }
    if (seconds < 1) {
      throw new IllegalArgumentException(REKEY_OVERRIDE_VARIABLE + " must be at least 1");
    }
    Timing d = DEFAULT;
    return new Timing(
        seconds * 1_000_000_000L,
        d.rejectAfterTime,
        d.rekeyAttemptTime,
        d.rekeyTimeout,
        d.rekeyTimeoutJitterMax,
        d.keepaliveTimeout,
        d.rekeyAfterMessages,
        d.rejectAfterMessages);
  }

  private static long nanos(Duration d) {
    return d.toNanos();
  }
}
