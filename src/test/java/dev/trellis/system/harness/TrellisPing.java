package dev.trellis.system.harness;

import dev.trellis.system.netns.CommandResult;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What {@code trellis ping} printed: one {@link Pong} per "pong from PEER via PATH in MS ms" line,
 * in order. PATH is "relay REGION" or the direct endpoint "IP:PORT".
 */
public record TrellisPing(CommandResult raw, List<Pong> pongs) {
  private static final Pattern PONG = Pattern.compile("pong from (\\S+) via (.+?) in ([\\d.]+) ms");

  /** One answered ping. */
  public record Pong(String peer, String via, double ms) {
    /** Came back over a relay ("relay REGION"), not a direct path. */
    public boolean relayed() {
      return via.startsWith("relay");
    }
  }

  public static TrellisPing parse(CommandResult raw) {
    List<Pong> pongs = new ArrayList<>();
    Matcher m = PONG.matcher(raw.stdout());
    while (m.find()) {
      pongs.add(new Pong(m.group(1), m.group(2), Double.parseDouble(m.group(3))));
    }
    return new TrellisPing(raw, List.copyOf(pongs));
  }

  /** The command exited 0 and at least one pong came back. */
  public boolean answered() {
    return raw.ok() && !pongs.isEmpty();
  }

  public Pong first() {
    return pongs.getFirst();
  }

  public Pong last() {
    return pongs.getLast();
  }

  /** Exit status and output, for failure messages. */
  @Override
  public String toString() {
    return "trellis ping (exit " + raw.exitCode() + "):\n" + raw.stdout() + raw.stderr();
  }
}
