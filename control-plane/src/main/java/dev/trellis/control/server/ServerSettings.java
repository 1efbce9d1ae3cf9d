package dev.trellis.control.server;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.trellis.control.dns.DnsSettings;
import dev.trellis.control.multicast.MulticastSettings;
import dev.trellis.proto.control.ControlMessage;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * The server's settings: the {@code trellis} section of trellis.conf (HOCON) over the defaults in
 * reference.conf, with command-line overrides on top. Every key is documented in the README.
 */
public record ServerSettings(
    String listenHost,
    int listenPort,
    Path dataDir,
    String serverUrl,
    String ipv4Prefix,
    String ipv6Prefix,
    Duration ephemeralTimeout,
    String levelDbNative,
    Path tlsKeystore,
    String tlsKeystorePassword,
    Config config,
    boolean stunEnabled,
    String stunHost,
    int stunPort,
    Journal journal,
    ControlMessage.DnsInfo dns,
    ControlMessage.MulticastInfo multicast,
    String metricsListen) {

  /**
   * Where events live: the embedded LevelDB ({@code url} null) or a PostgreSQL database shared by
   * replicas.
   */
  public record Journal(String kind, String url, String user, String password, int maxConnections) {
    public boolean postgres() {
      return kind.equals("postgres");
    }

    static Journal from(Config t) {
      String kind = t.getString("journal").strip().toLowerCase(Locale.ROOT);
      Config pg = t.getConfig("postgres");
      return switch (kind) {
        case "leveldb" -> new Journal(kind, null, null, null, 0);
        case "postgres" -> {
          String url = pg.getString("url").strip();
          if (!url.startsWith("jdbc:postgresql://")) {
            throw new IllegalArgumentException(
                "trellis.postgres.url must be jdbc:postgresql://HOST:PORT/DATABASE when "
                    + "trellis.journal = postgres, not '"
                    + url
                    + "'");
          }
          int max = pg.getInt("max-connections");
          if (max < 1) {
            throw new IllegalArgumentException(
                "trellis.postgres.max-connections must be at least 1, not " + max);
          }
          yield new Journal(kind, url, pg.getString("user"), pg.getString("password"), max);
        }
        default ->
            throw new IllegalArgumentException(
                "trellis.journal must be leveldb or postgres, not '" + kind + "'");
      };
    }
  }

  /**
   * A {@code trellis.*} key that no setting has is an error naming it and the nearest known one: a
   * typo ({@code relay.enable}) must not leave the default silently in force.
   */
  static void rejectUnknownKeys(Config given, String where) {
    if (!given.hasPath("trellis")) {
      return;
    }
    Set<String> known = new TreeSet<>();
    ConfigFactory.defaultReference()
        .getConfig("trellis")
        .entrySet()
        .forEach(e -> known.add("trellis." + e.getKey()));
    for (var entry : given.getConfig("trellis").entrySet()) {
      String key = "trellis." + entry.getKey();
      if (known.contains(key)) {
        continue;
      }
      String nearest = null;
      int best = Integer.MAX_VALUE;
      for (String k : known) {
        int d = editDistance(key, k);
        if (d < best) {
          best = d;
          nearest = k;
        }
      }
      throw new IllegalArgumentException(
          "unknown setting "
              + key
              + " in "
              + where
              + (nearest != null && best <= Math.max(3, key.length() / 4)
                  ? "; did you mean " + nearest + "?"
                  : "; the settings are listed in the README (Configuration)"));
    }
  }

  /** Levenshtein distance: insertions, deletions and substitutions. */
  static int editDistance(String a, String b) {
    int[] previous = new int[b.length() + 1];
    int[] current = new int[b.length() + 1];
    for (int j = 0; j <= b.length(); j++) {
      previous[j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      current[0] = i;
      for (int j = 1; j <= b.length(); j++) {
        int substitute = previous[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
        current[j] = Math.min(substitute, Math.min(previous[j] + 1, current[j - 1] + 1));
      }
      int[] t = previous;
      previous = current;
      current = t;
    }
    return previous[b.length()];
  }

  /** Loads {@code configFile} (may be null) and applies overrides (each may be null). */
  public static ServerSettings load(Path configFile, Path dataDirOverride, String listenOverride) {
    Config fileConfig = ConfigFactory.empty();
    if (configFile != null) {
      if (!Files.isRegularFile(configFile)) {
        throw new IllegalArgumentException("config file " + configFile + " does not exist");
      }
      fileConfig = ConfigFactory.parseFile(configFile.toFile());
    }
    Config overrides = ConfigFactory.empty();
    if (dataDirOverride != null) {
      overrides =
          overrides.withValue(
              "trellis.data-dir", ConfigValueFactory.fromAnyRef(dataDirOverride.toString()));
    }
    if (listenOverride != null) {
      overrides =
          overrides.withValue("trellis.listen", ConfigValueFactory.fromAnyRef(listenOverride));
    }
    rejectUnknownKeys(fileConfig, configFile == null ? "the configuration" : configFile.toString());
    rejectUnknownKeys(ConfigFactory.defaultOverrides(), "the system properties");
    Config config = overrides.withFallback(fileConfig).withFallback(ConfigFactory.load()).resolve();
    try {
      Config t = config.getConfig("trellis");
      InetSocketAddress listen = parseListen(t.getString("listen"));
      String url = t.getString("server-url");
      String keystore = t.getString("tls.keystore");
      if (url.isBlank()) {
        String host = listen.getHostString();
        if (host.equals("0.0.0.0") || host.equals("::") || host.isBlank()) {
          // Nodes and other members are told this URL: never a loopback one for a server that
          // listens on every address.
          host =
              HostAddress.reachable()
                  .orElseThrow(
                      () ->
                          new IllegalArgumentException(
                              "cannot tell which address other hosts reach this server at: it"
                                  + " listens on "
                                  + listen.getHostString()
                                  + " and the host has no address but loopback; set"
                                  + " trellis.server-url (e.g. http://SERVER-ADDRESS:"
                                  + listen.getPort()
                                  + ")"));
        }
        url =
            (keystore.isBlank() ? "http://" : "https://")
                + (host.contains(":") ? "[" + host + "]" : host)
                + ":"
                + listen.getPort();
      }
      InetSocketAddress stun;
      try {
        stun = parseListen(t.getString("stun.listen"));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("trellis.stun.listen: " + e.getMessage(), e);
      }
      // Test servers take HTTP port 0; the default STUN port would make them collide, so it
      // follows.
      String stunKey = "trellis.stun.listen";
      boolean stunExplicit =
          fileConfig.hasPath(stunKey)
              || ConfigFactory.defaultOverrides().hasPath(stunKey)
              || ConfigFactory.defaultApplication().hasPath(stunKey);
      int stunPort = listen.getPort() == 0 && !stunExplicit ? 0 : stun.getPort();
      // The metrics listener follows the same way; empty turns it off.
      String metricsKey = "trellis.metrics.listen";
      String metricsListen = t.getString("metrics.listen").strip();
      if (!metricsListen.isEmpty()) {
        InetSocketAddress metrics;
        try {
          metrics = parseListen(metricsListen);
        } catch (IllegalArgumentException e) {
          throw new IllegalArgumentException(metricsKey + ": " + e.getMessage(), e);
        }
        boolean metricsExplicit =
            fileConfig.hasPath(metricsKey)
                || ConfigFactory.defaultOverrides().hasPath(metricsKey)
                || ConfigFactory.defaultApplication().hasPath(metricsKey);
        if (listen.getPort() == 0 && !metricsExplicit) {
          String host = metrics.getHostString();
          metricsListen = (host.contains(":") ? "[" + host + "]" : host) + ":0";
        }
      }
      return new ServerSettings(
          listen.getHostString(),
          listen.getPort(),
          Path.of(t.getString("data-dir")).toAbsolutePath(),
          url.replaceAll("/+$", ""),
          t.getString("ipv4-prefix"),
          t.getString("ipv6-prefix"),
          t.getDuration("ephemeral-timeout"),
          t.getString("leveldb-native"),
          keystore.isBlank() ? null : Path.of(keystore).toAbsolutePath(),
          t.getString("tls.keystore-password"),
          config,
          t.getBoolean("stun.enabled"),
          stun.getHostString(),
          stunPort,
          Journal.from(t),
          DnsSettings.from(t),
          MulticastSettings.from(t),
          metricsListen);
    } catch (ConfigException e) {
      throw new IllegalArgumentException("bad configuration: " + e.getMessage(), e);
    }
  }

  /** "HOST:PORT", ":PORT" or "[V6]:PORT". */
  static InetSocketAddress parseListen(String listen) {
    int colon = listen.lastIndexOf(':');
    if (colon < 0) {
      throw new IllegalArgumentException("listen address must be HOST:PORT, got '" + listen + "'");
    }
    String host = listen.substring(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    int port;
    try {
      port = Integer.parseInt(listen.substring(colon + 1));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("listen port is not a number in '" + listen + "'");
    }
    if (port < 0 || port > 65535) {
      throw new IllegalArgumentException("listen port out of range in '" + listen + "'");
    }
    return InetSocketAddress.createUnresolved(host.isEmpty() ? "0.0.0.0" : host, port);
  }
}
