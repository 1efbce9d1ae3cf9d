package dev.trellis.control.node;

import java.util.Locale;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/** Node hostnames are single DNS labels, unique among live nodes. */
public final class Hostnames {

  public static final int MAX_LENGTH = 63;
  private static final Pattern LABEL = Pattern.compile("[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?");
  private static final Pattern OUTSIDE_LABEL = Pattern.compile("[^a-z0-9-]");

  private Hostnames() {}

  public static boolean isValid(String hostname) {
    return hostname != null && LABEL.matcher(hostname).matches();
  }

  /**
   * Lowercase, other characters to '-', no '-' at either end, at most 63 characters; "node" if
   * nothing is left.
   */
  public static String sanitize(String requested) {
    String name =
        requested == null
            ? ""
            : OUTSIDE_LABEL.matcher(requested.toLowerCase(Locale.ROOT)).replaceAll("-");
    name = trimDashes(name);
    if (name.length() > MAX_LENGTH) name = trimDashes(name.substring(0, MAX_LENGTH));
    return name.isEmpty() ? "node" : name;
  }

  /** {@code base}, else {@code base-1}, {@code base-2}… whichever is first not taken. */
  public static String unique(String base, Predicate<String> taken) {
    if (!taken.test(base)) return base;
    for (int n = 1; ; n++) {
      String suffix = "-" + n;
      String head =
          base.length() + suffix.length() > MAX_LENGTH
              ? trimDashes(base.substring(0, MAX_LENGTH - suffix.length()))
              : base;
      String candidate = (head.isEmpty() ? "node" : head) + suffix;
      if (!taken.test(candidate)) return candidate;
    }
  }

  /** Whether {@code hostname} is {@code base} or a numbered variant of it ({@code base-3}). */
  static boolean isVariantOf(String hostname, String base) {
    if (hostname.equals(base)) return true;
    int dash = hostname.lastIndexOf('-');
    if (dash <= 0 || dash == hostname.length() - 1) return false;
    for (int i = dash + 1; i < hostname.length(); i++)
      if (!Character.isDigit(hostname.charAt(i))) return false;
    String head = hostname.substring(0, dash);
    return base.equals(head)
        || (base.startsWith(head) && base.length() + hostname.length() - dash > MAX_LENGTH);
  }

  private static String trimDashes(String name) {
    int start = 0, end = name.length();
    while (start < end && name.charAt(start) == '-') start++;
    while (end > start && name.charAt(end - 1) == '-') end--;
    return name.substring(start, end);
  }
}
