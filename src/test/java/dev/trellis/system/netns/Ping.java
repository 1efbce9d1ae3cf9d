package dev.trellis.system.netns;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Runs iputils ping inside a namespace and parses its summary. */
public final class Ping {
  private static final Pattern COUNTS =
      Pattern.compile("(\\d+) packets transmitted, (\\d+) received");
  private static final Pattern LOSS = Pattern.compile("([\\d.]+)% packet loss");
  private static final Pattern RTT =
      Pattern.compile("= ([\\d.]+)/([\\d.]+)/([\\d.]+)/([\\d.]+) ms");

  private Ping() {}

  public record Result(
      CommandResult raw, int transmitted, int received, double lossPercent, double rttAvgMs) {
    public boolean allReplied() {
      return raw.ok() && transmitted > 0 && received == transmitted && lossPercent == 0.0;
    }
  }

  /**
   * {@code ping -c 3 -i 0.2 -W 2 DEST}. The first echo usually triggers the handshake; WireGuard
   * queues it until the session exists, and ping waits up to 2 s after the last send for
   * outstanding replies.
   */
  public static Result ping(NetworkNamespace from, String dest) {
    return ping(from, dest, 3, 2, null, "0.2");
  }

  /**
   * {@code ping -c COUNT -W WAIT [-s SIZE] [-i INTERVAL] DEST}; never throws on loss (the caller
   * asserts).
   */
  public static Result ping(
      NetworkNamespace from,
      String dest,
      int count,
      int waitSeconds,
      Integer size,
      String interval) {
    List<String> argv =
        new ArrayList<>(
            List.of(
                Tools.require("ping"),
                "-n",
                "-c",
                Integer.toString(count),
                "-W",
                Integer.toString(waitSeconds)));
    if (size != null) {
      argv.addAll(List.of("-s", Integer.toString(size)));
    }
    if (interval != null) {
      argv.addAll(List.of("-i", interval));
    }
    argv.add(dest);
    double period = interval == null ? 1.0 : Double.parseDouble(interval);
    Duration timeout = Duration.ofSeconds((long) (count * period) + waitSeconds + 15);
    CommandResult r = from.run(Map.of(), timeout, argv.toArray(String[]::new));
    return parse(r);
  }

  public static Result parse(CommandResult r) {
    String out = r.stdout();
    int tx = 0;
    int rx = 0;
    double loss = 100.0;
    double avg = Double.NaN;
    Matcher m = COUNTS.matcher(out);
    if (m.find()) {
      tx = Integer.parseInt(m.group(1));
      rx = Integer.parseInt(m.group(2));
    }
    m = LOSS.matcher(out);
    if (m.find()) {
      loss = Double.parseDouble(m.group(1));
    }
    m = RTT.matcher(out);
    if (m.find()) {
      avg = Double.parseDouble(m.group(2));
    }
    return new Result(r, tx, rx, loss, avg);
  }
}
