package dev.trellis.persistence;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.trellis.persistence.PersistenceSettingsTest.Appender;
import dev.trellis.persistence.postgres.LocalPostgres;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The clustered journal: events and snapshots in a real PostgreSQL, recovered by a fresh actor
 * system.
 */
@Timeout(120)
class PostgresJournalTest {
  private static LocalPostgres postgres;

  @BeforeAll
  static void start() throws Exception {
    postgres = LocalPostgres.start();
  }

  @AfterAll
  static void stop() {
    if (postgres != null) {
      postgres.close();
    }
  }

  @Test
  void persistsAndRecoversFromPostgres() throws Exception {
    String url = postgres.createDatabase("journal_test");
    Config config =
        PersistenceSettings.forPostgres(url, LocalPostgres.USER, "", 4)
            .withFallback(ConfigFactory.load());

    ActorTestKit first = ActorTestKit.create("pg", config);
    List<String> written;
    try {
      PostgresSchema.ensure(first.system(), Duration.ofSeconds(30));
      PostgresSchema.ensure(
          first.system(), Duration.ofSeconds(30)); // a second replica starting: no error
      TestProbe<List<String>> probe = first.createTestProbe();
      var log = first.spawn(Appender.create("pg-log-1"));
      for (int i = 0; i < 25; i++) {
        log.tell(new Appender.Append("e" + i, probe.ref()));
      }
      written = probe.receiveSeveralMessages(25, Duration.ofSeconds(20)).getLast();
    } finally {
      first.shutdownTestKit();
    }
    try (Connection c = DriverManager.getConnection(url, LocalPostgres.USER, "");
        ResultSet rows =
            c.createStatement()
                .executeQuery(
                    "SELECT count(*) FROM event_journal WHERE persistence_id = 'pg-log-1'")) {
      rows.next();
      assertEquals(25, rows.getInt(1), "every event is a row in PostgreSQL");
    }

    ActorTestKit second = ActorTestKit.create("pg", config);
    try {
      TestProbe<List<String>> again = second.createTestProbe();
      second.spawn(Appender.create("pg-log-1")).tell(new Appender.Read(again.ref()));
      assertEquals(written, again.receiveMessage(Duration.ofSeconds(20)));
      assertEquals(25, written.size());
    } finally {
      second.shutdownTestKit();
    }
  }

  @Test
  void badJournalSettingsAreRejectedClearly() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> PersistenceSettings.forPostgres("jdbc:mysql://x/y", "u", "", 4));
    assertTrue(e.getMessage().contains("jdbc:postgresql://"), e.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () -> PersistenceSettings.forPostgres(postgres.jdbcUrl("x"), "u", "", 0));
  }
}
