package dev.trellis.persistence;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PersistenceSettingsTest {

  @TempDir Path dataDir;

  @Test
  void layerPointsTheJournalAndSnapshotsIntoTheDataDir() {
    Config config = PersistenceSettings.forDataDir(dataDir, false);
    assertEquals(
        "pekko.persistence.journal.leveldb", config.getString("pekko.persistence.journal.plugin"));
    assertEquals(
        dataDir.resolve("journal").toString(),
        config.getString("pekko.persistence.journal.leveldb.dir"));
    assertEquals(
        dataDir.resolve("snapshots").toString(),
        config.getString("pekko.persistence.snapshot-store.local.dir"));
    assertEquals(false, config.getBoolean("pekko.persistence.journal.leveldb.native"));
    assertEquals(
        -1, config.getInt("pekko.actor.default-dispatcher.fork-join-executor.minimum-runnable"));
  }

  @Test
  void nativeFollowsTheArchitectureUnlessOverridden() {
    String arch = System.getProperty("os.arch");
    boolean x86 = arch.equals("amd64") || arch.equals("x86_64");
    assertEquals(x86, PersistenceSettings.nativeLevelDbSupported());
    String before = System.getProperty(PersistenceSettings.NATIVE_PROPERTY);
    try {
      System.setProperty(PersistenceSettings.NATIVE_PROPERTY, "off");
      assertEquals(
          false,
          PersistenceSettings.forDataDir(dataDir)
              .getBoolean("pekko.persistence.journal.leveldb.native"));
      System.clearProperty(PersistenceSettings.NATIVE_PROPERTY);
      assertEquals(
          x86,
          PersistenceSettings.forDataDir(dataDir)
              .getBoolean("pekko.persistence.journal.leveldb.native"));
    } finally {
      if (before == null) System.clearProperty(PersistenceSettings.NATIVE_PROPERTY);
      else System.setProperty(PersistenceSettings.NATIVE_PROPERTY, before);
    }
  }

  @ParameterizedTest(name = "native = {0}")
  @ValueSource(booleans = {false, true})
  void persistsAndRecoversWithLevelDb(boolean nativeLevelDb) {
    if (nativeLevelDb && !PersistenceSettings.nativeLevelDbSupported()) return;
    Config config =
        PersistenceSettings.forDataDir(dataDir, nativeLevelDb).withFallback(ConfigFactory.load());

    ActorTestKit first = ActorTestKit.create("persist", config);
    TestProbe<List<String>> probe = first.createTestProbe();
    var log = first.spawn(Appender.create("log-1"));
    // More than one snapshot interval, so recovery goes through a snapshot and then events.
    for (int i = 0; i < 25; i++) log.tell(new Appender.Append("e" + i, probe.ref()));
    List<String> written = probe.receiveSeveralMessages(25, Duration.ofSeconds(10)).getLast();
    first.shutdownTestKit();

    assertTrue(Files.isDirectory(dataDir.resolve("journal")));
    assertTrue(Files.isDirectory(dataDir.resolve("snapshots")));

    ActorTestKit second = ActorTestKit.create("persist", config);
    try {
      TestProbe<List<String>> again = second.createTestProbe();
      second.spawn(Appender.create("log-1")).tell(new Appender.Read(again.ref()));
      assertEquals(written, again.receiveMessage(Duration.ofSeconds(10)));
      assertEquals(25, written.size());
    } finally {
      second.shutdownTestKit();
    }
  }

  /** Minimal event-sourced list used to exercise the journal and snapshot store. */
  static final class Appender
      extends EventSourcedBehavior<Appender.Command, Appender.Appended, Appender.Entries> {
    sealed interface Command {}

    record Append(String value, ActorRef<List<String>> replyTo) implements Command {}

    record Read(ActorRef<List<String>> replyTo) implements Command {}

    record Appended(String value) implements CborSerializable {}

    record Entries(List<String> values) implements CborSerializable {}

    static Behavior<Command> create(String id) {
      return new Appender(PersistenceId.ofUniqueId(id));
    }

    private Appender(PersistenceId id) {
      super(id);
    }

    @Override
    public Entries emptyState() {
      return new Entries(List.of());
    }

    @Override
    public RetentionCriteria retentionCriteria() {
      return RetentionCriteria.snapshotEvery(10, 2);
    }

    @Override
    public CommandHandler<Command, Appended, Entries> commandHandler() {
      return (state, command) ->
          switch (command) {
            case Append a ->
                Effect().persist(new Appended(a.value())).thenReply(a.replyTo(), Entries::values);
            case Read r -> Effect().reply(r.replyTo(), state.values());
          };
    }

    @Override
    public EventHandler<Entries, Appended> eventHandler() {
      return (state, event) -> {
        List<String> values = new ArrayList<>(state.values());
        values.add(event.value());
        return new Entries(List.copyOf(values));
      };
    }
  }
}
