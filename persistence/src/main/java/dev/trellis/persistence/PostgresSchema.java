package dev.trellis.persistence;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.persistence.jdbc.testkit.javadsl.SchemaUtils;

/**
 * Creates pekko-persistence-jdbc's tables (journal, tags, snapshots) if they are missing, before
 * any entity starts. Safe to call from every replica at start: "if not exists" in PostgreSQL.
 */
public final class PostgresSchema {
  private PostgresSchema() {}

  public static void ensure(ActorSystem<?> system, Duration timeout) {
    try {
      SchemaUtils.createIfNotExists(system)
          .toCompletableFuture()
          .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      Throwable cause = e.getCause() != null ? e.getCause() : e;
      throw new IllegalStateException(
          "cannot create the journal tables in PostgreSQL: " + cause.getMessage(), cause);
    }
  }
}
