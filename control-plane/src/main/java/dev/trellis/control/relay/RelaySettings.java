package dev.trellis.control.relay;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import dev.trellis.proto.control.ControlMessage;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The {@code trellis.relay} section: whether {@code GET /relay} is served, the region it stands for
 * and the URL nodes reach it at (empty: the server URL), how many frames may wait for one slow node
 * before newer ones are dropped, and further relays ({@code trellis relay} processes in other
 * buildings) to advertise in the relay map.
 */
public record RelaySettings(
    boolean enabled,
    String region,
    String url,
    int maxQueue,
    List<ControlMessage.RelayInfo> others) {
  public static final Pattern REGION = Pattern.compile("[A-Za-z0-9._-]{1,64}");

  public static RelaySettings from(Config config) {
    Config r = config.getConfig("trellis.relay");
    int maxQueue = r.getInt("max-queue");
    if (maxQueue < 1) {
      throw new IllegalArgumentException(
          "trellis.relay.max-queue must be at least 1, not " + maxQueue);
    }
    String region = region(r.getString("region"), "trellis.relay.region");
    String url = r.getString("url").strip();
    if (!url.isEmpty()) {
      url(url, "trellis.relay.url");
    }
    List<ControlMessage.RelayInfo> others = new ArrayList<>();
    int i = 0;
    for (Config o : r.getConfigList("others")) {
      String where = "trellis.relay.others[" + i++ + "]";
      try {
        others.add(
            new ControlMessage.RelayInfo(
                region(o.getString("region"), where + ".region"),
                url(o.getString("url"), where + ".url"),
                o.hasPath("key") ? o.getString("key") : null,
                o.hasPath("stun-port") ? o.getInt("stun-port") : null));
      } catch (ConfigException e) {
        throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
      }
    }
    return new RelaySettings(r.getBoolean("enabled"), region, url, maxQueue, List.copyOf(others));
  }

  private static String region(String region, String where) {
    if (!REGION.matcher(region).matches()) {
      throw new IllegalArgumentException(
          where + " must be 1-64 letters, digits, '.', '_' or '-', not '" + region + "'");
    }
    return region;
  }

  private static String url(String url, String where) {
    try {
      URI u = URI.create(url);
      if (!("http".equals(u.getScheme()) || "https".equals(u.getScheme())) || u.getHost() == null) {
        throw new IllegalArgumentException();
      }
      return url;
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          where + " must be an http:// or https:// URL, not '" + url + "'");
    }
  }

  /**
   * This server's relay as a relay map entry, pinned to {@code key}, with STUN on {@code stunPort}
   * (null: none). Without a configured {@code url} its URL is null, which nodes read as "the login
   * server you use": the server's own idea of its address (e.g. 0.0.0.0 or a name only resolvable
   * inside the building) may not be what nodes reach.
   */
  public ControlMessage.RelayInfo ownEntry(String key, Integer stunPort) {
    return new ControlMessage.RelayInfo(region, url.isEmpty() ? null : url, key, stunPort);
  }
}
