package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.List;

/**
 * The CLI's tables: left-aligned columns two spaces apart, no trailing blanks; shared by node and
 * admin commands.
 */
public final class TextTable {
  private TextTable() {}

  /** The rows (the first is the header), one line each. */
  public static String render(List<String[]> rows) {
    int[] widths = new int[rows.getFirst().length];
    for (String[] row : rows) {
      for (int i = 0; i < row.length; i++) {
        widths[i] = Math.max(widths[i], row[i].length());
      }
    }
    StringBuilder out = new StringBuilder();
    for (String[] row : rows) {
      StringBuilder line = new StringBuilder();
      for (int i = 0; i < row.length; i++) {
        line.append(
            i == row.length - 1 ? row[i] : String.format("%-" + (widths[i] + 2) + "s", row[i]));
      }
      out.append(line.toString().stripTrailing()).append('\n');
    }
    return out.toString();
  }

  /** "12s ago", "5m ago", "3h ago", "2d ago"; "-" when never. */
  public static String ago(JsonNode timestamp, Instant now) {
    if (timestamp == null || !timestamp.isTextual()) {
      return "-";
    }
    try {
      long seconds =
          Math.max(0, Duration.between(Instant.parse(timestamp.asText()), now).toSeconds());
      if (seconds < 60) {
        return seconds + "s ago";
      } else if (seconds < 3600) {
        return seconds / 60 + "m ago";
      } else if (seconds < 86400) {
        return seconds / 3600 + "h ago";
      }
      return seconds / 86400 + "d ago";
    } catch (DateTimeParseException e) {
      return "-";
    }
  }
}
