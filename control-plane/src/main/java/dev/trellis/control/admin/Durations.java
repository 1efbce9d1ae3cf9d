package dev.trellis.control.admin;

import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Expirations as admins type them: {@code 30s}, {@code 15m}, {@code 24h}, {@code 90d}, or ISO-8601
 * ({@code PT24H}).
 */
public final class Durations {

  private static final Pattern SHORT = Pattern.compile("(\\d{1,9})([smhd])");

  private Durations() {}

  /**
   * A positive duration; {@link IllegalArgumentException} with a message fit for the user
   * otherwise.
   */
  public static Duration parse(String text) {
    if (text == null || text.isBlank()) throw new IllegalArgumentException("empty duration");
    String t = text.trim();
    Matcher m = SHORT.matcher(t.toLowerCase(Locale.ROOT));
    Duration d;
    if (m.matches()) {
      long n = Long.parseLong(m.group(1));
      d =
          switch (m.group(2)) {
            case "s" -> Duration.ofSeconds(n);
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            default -> Duration.ofDays(n);
          };
    } else {
      try {
        d = Duration.parse(t);
      } catch (DateTimeParseException e) {
        throw new IllegalArgumentException(
            "invalid duration '" + text + "': use 30s, 15m, 24h, 90d or ISO-8601 like PT24H");
      }
    }
    if (d.isNegative() || d.isZero())
      throw new IllegalArgumentException("duration '" + text + "' must be positive");
    return d;
  }
}
