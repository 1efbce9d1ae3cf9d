package dev.trellis.persistence;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * The configuration layer of an embedded (single-node) server: LevelDB journal and local snapshot
 * store under one data directory. Put it in front of the application config: {@code
 * PersistenceSettings.forDataDir(dir).withFallback(ConfigFactory.load())}.
 */
public final class PersistenceSettings {

  /** System property that forces native LevelDB on or off ({@code true}/{@code false}). */
  public static final String NATIVE_PROPERTY = "trellis.leveldb.native";

  private PersistenceSettings() {}

  /** LevelDB flavour chosen from {@link #NATIVE_PROPERTY}, else from the CPU architecture. */
  public static Config forDataDir(Path dataDir) {
    return forDataDir(
        dataDir, nativeOverride().orElseGet(PersistenceSettings::nativeLevelDbSupported));
  }

  public static Config forDataDir(Path dataDir, boolean nativeLevelDb) {
    Path dir = dataDir.toAbsolutePath().normalize();
    return ConfigFactory.parseMap(
        Map.of(
            "pekko.persistence.journal.plugin",
            "pekko.persistence.journal.leveldb",
            "pekko.persistence.journal.leveldb.dir",
            dir.resolve("journal").toString(),
            "pekko.persistence.journal.leveldb.native",
            nativeLevelDb,
            "pekko.persistence.snapshot-store.plugin",
            "pekko.persistence.snapshot-store.local",
            "pekko.persistence.snapshot-store.local.dir",
            dir.resolve("snapshots").toString(),
            // ForkJoinPool starves on JDK 25 with Pekko's default minimum-runnable.
            "pekko.actor.default-dispatcher.fork-join-executor.minimum-runnable",
            -1),
        "Trellis persistence for " + dir);
  }

  /** Whether {@code config} puts the journal in a database every replica shares. */
  public static boolean sharedJournal(Config config) {
    return config.hasPath("pekko.persistence.journal.plugin")
        && "jdbc-journal".equals(config.getString("pekko.persistence.journal.plugin"));
  }

  /**
   * The clustered layer: journal, snapshot store and read journal in one PostgreSQL database
   * (pekko-persistence-jdbc, sharing one connection pool), so every coordinator replica sees the
   * same events. The tables are created by {@link PostgresSchema#ensure}.
   */
  public static Config forPostgres(
      String jdbcUrl, String user, String password, int maxConnections) {
    if (!jdbcUrl.startsWith("jdbc:postgresql://")) {
      throw new IllegalArgumentException(
          "the journal URL must be jdbc:postgresql://HOST:PORT/DATABASE, not '" + jdbcUrl + "'");
    }
    if (maxConnections < 1) {
      throw new IllegalArgumentException(
          "the journal needs at least one connection, not " + maxConnections);
    }
    String db = "pekko-persistence-jdbc.shared-databases.trellis";
    return ConfigFactory.parseMap(
        Map.ofEntries(
            Map.entry("pekko.persistence.journal.plugin", "jdbc-journal"),
            Map.entry("pekko.persistence.snapshot-store.plugin", "jdbc-snapshot-store"),
            Map.entry("jdbc-journal.use-shared-db", "trellis"),
            Map.entry("jdbc-snapshot-store.use-shared-db", "trellis"),
            Map.entry("jdbc-read-journal.use-shared-db", "trellis"),
            Map.entry(db + ".profile", "slick.jdbc.PostgresProfile$"),
            Map.entry(db + ".db.url", jdbcUrl),
            Map.entry(db + ".db.user", user),
            Map.entry(db + ".db.password", password == null ? "" : password),
            Map.entry(db + ".db.driver", "org.postgresql.Driver"),
            Map.entry(db + ".db.numThreads", maxConnections),
            Map.entry(db + ".db.maxConnections", maxConnections),
            Map.entry(db + ".db.minConnections", 1),
            Map.entry("pekko.actor.default-dispatcher.fork-join-executor.minimum-runnable", -1)),
        "Trellis persistence in PostgreSQL " + jdbcUrl);
  }

  /** leveldbjni 1.8 ships native libraries for x86-64 only; elsewhere use the pure-Java port. */
  public static boolean nativeLevelDbSupported() {
    String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
    return arch.equals("amd64") || arch.equals("x86_64") || arch.equals("x86-64");
  }

  static Optional<Boolean> nativeOverride() {
    String value = System.getProperty(NATIVE_PROPERTY);
    if (value == null || value.isBlank()) return Optional.empty();
    return switch (value.trim().toLowerCase(Locale.ROOT)) {
      case "true", "on", "yes" -> Optional.of(true);
      case "false", "off", "no" -> Optional.of(false);
      default ->
          throw new IllegalArgumentException(
              NATIVE_PROPERTY + " must be true or false, not " + value);
    };
  }
}
