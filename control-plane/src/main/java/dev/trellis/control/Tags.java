package dev.trellis.control;

import java.util.Collections;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/** ACL tags attached to auth keys and nodes: {@code tag:} and a lowercase name. */
public final class Tags {

  private static final Pattern TAG = Pattern.compile("tag:[a-z0-9-]+");

  private Tags() {}

  public static boolean isTag(String tag) {
    return tag != null && TAG.matcher(tag).matches();
  }

  /** The first malformed tag, or null if all are well formed (null means no tags). */
  public static String firstInvalid(Set<String> tags) {
    if (tags == null) return null;
    for (String tag : tags) if (!isTag(tag)) return String.valueOf(tag);
    return null;
  }

  /** Sorted, unmodifiable copy; null means none. Sorted so equal sets serialize identically. */
  public static Set<String> copy(Set<String> tags) {
    return tags == null ? Set.of() : Collections.unmodifiableSortedSet(new TreeSet<>(tags));
  }
}
