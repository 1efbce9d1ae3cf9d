package dev.trellis.control.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.trellis.control.Result;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.persistence.PersistenceSettings;
import dev.trellis.persistence.PostgresSchema;
import dev.trellis.persistence.postgres.LocalPostgres;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Join;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What makes stand-ins safe and useful, on a real PostgreSQL journal: two incarnations of one
 * entity cannot both write on the same history, and a silent entity is answered for by a stand-in
 * that recovered everything it wrote.
 */
@Timeout(120)
class StandInTest {
  private static final Duration WAIT = Duration.ofSeconds(20);
  private static LocalPostgres postgres;
  private static ActorTestKit kit;

  @BeforeAll
  static void start() throws Exception {
    postgres = LocalPostgres.start();
    String url = postgres.createDatabase("stand_in_test");
    Config config =
        ConfigFactory.parseString(
                """
                pekko.actor.provider = cluster
                pekko.remote.artery.canonical { hostname = "127.0.0.1", port = 0 }
                """)
            .withFallback(PersistenceSettings.forPostgres(url, LocalPostgres.USER, "", 4))
            .withFallback(ConfigFactory.load());
    kit = ActorTestKit.create("stand-in", config);
    PostgresSchema.ensure(kit.system(), Duration.ofSeconds(30));
    Cluster cluster = Cluster.get(kit.system());
    cluster.manager().tell(Join.create(cluster.selfMember().address()));
  }

  @AfterAll
  static void stop() {
    if (kit != null) kit.shutdownTestKit();
    if (postgres != null) postgres.close();
  }

  private static <C, R> R ask(ActorRef<C> to, Function<ActorRef<R>, C> message) throws Exception {
    return AskPattern.ask(to, message::apply, WAIT, kit.scheduler())
        .toCompletableFuture()
        .get(WAIT.toSeconds(), TimeUnit.SECONDS);
  }

  private static String machineKey(int i) {
    byte[] key = new byte[32];
    key[0] = (byte) i;
    return Base64.getEncoder().encodeToString(key);
  }

  private static AuthKeyRegistry.CreatedAuthKey singleUseKey() throws Exception {
    ActorRef<AuthKeyRegistry.Command> registry = kit.spawn(AuthKeyRegistry.create());
    Result<AuthKeyRegistry.CreatedAuthKey> created =
        ask(
            registry,
            r -> new AuthKeyRegistry.CreateAuthKey("lab", false, false, null, Set.of(), r));
    kit.stop(registry);
    return created.orElseThrow();
  }

  @Test
  void twoIncarnationsCannotBothSpendASingleUseKey() throws Exception {
    String secret = singleUseKey().secret();
    // Two incarnations that recovered the same history, as a lost member's entity and a stand-in.
    List<ActorRef<AuthKeyRegistry.Command>> incarnations =
        List.of(kit.spawn(AuthKeyRegistry.create()), kit.spawn(AuthKeyRegistry.create()));
    for (var incarnation : incarnations) {
      ask(
          incarnation,
          (ActorRef<List<AuthKeyRegistry.AuthKey>> r) -> new AuthKeyRegistry.ListAuthKeys(null, r));
    }
    Instant now = Instant.now();
    List<CompletableFuture<Result<AuthKeyRegistry.AuthKeyGrant>>> uses =
        List.of(
            AskPattern.<AuthKeyRegistry.Command, Result<AuthKeyRegistry.AuthKeyGrant>>ask(
                    incarnations.get(0),
                    r -> new AuthKeyRegistry.UseAuthKey(secret, machineKey(1), now, r),
                    WAIT,
                    kit.scheduler())
                .toCompletableFuture(),
            AskPattern.<AuthKeyRegistry.Command, Result<AuthKeyRegistry.AuthKeyGrant>>ask(
                    incarnations.get(1),
                    r -> new AuthKeyRegistry.UseAuthKey(secret, machineKey(2), now, r),
                    WAIT,
                    kit.scheduler())
                .toCompletableFuture());
    CompletableFuture.anyOf(uses.get(0), uses.get(1)).get(WAIT.toSeconds(), TimeUnit.SECONDS);
    int winner = uses.get(0).isDone() && !uses.get(0).isCompletedExceptionally() ? 0 : 1;
    assertTrue(uses.get(winner).get().isOk(), String.valueOf(uses.get(winner).get()));
    // The other one's write of the same sequence number fails in PostgreSQL: it stops unanswered.
    kit.createTestProbe().expectTerminated(incarnations.get(1 - winner), WAIT);
    assertFalse(uses.get(1 - winner).isDone() && !uses.get(1 - winner).isCompletedExceptionally());

    // A later incarnation (the one sharding starts on a survivor) sees exactly the winner's use.
    ActorRef<AuthKeyRegistry.Command> later = kit.spawn(AuthKeyRegistry.create());
    Result<AuthKeyRegistry.AuthKeyGrant> loser =
        ask(later, r -> new AuthKeyRegistry.UseAuthKey(secret, machineKey(2 - winner), now, r));
    assertEquals(
        Result.Code.USED,
        ((Result.Rejected<AuthKeyRegistry.AuthKeyGrant>) loser).code(),
        "" + loser);
    Result<AuthKeyRegistry.AuthKeyGrant> again =
        ask(later, r -> new AuthKeyRegistry.UseAuthKey(secret, machineKey(1 + winner), now, r));
    assertTrue(again.isOk(), "the winner may present its key again: " + again);
  }

  @Test
  void aSilentEntityIsAnsweredForByAStandInWithEverythingItWrote() throws Exception {
    AuthKeyRegistry.CreatedAuthKey key = singleUseKey();
    // The sharded entity on a killed member: messages to it go nowhere.
    ActorRef<AuthKeyRegistry.Command> lost = kit.spawn(Behaviors.ignore());
    StandIn standIn = new StandIn(kit.system(), true, Clock.systemUTC());
    var target = new StandIn.Target<>("authkeys", lost, AuthKeyRegistry::create);
    long start = System.nanoTime();
    List<AuthKeyRegistry.AuthKey> keys =
        standIn
            .<AuthKeyRegistry.Command, List<AuthKeyRegistry.AuthKey>>ask(
                target, r -> new AuthKeyRegistry.ListAuthKeys(null, r))
            .toCompletableFuture()
            .get(WAIT.toSeconds(), TimeUnit.SECONDS);
    long ms = (System.nanoTime() - start) / 1_000_000;
    assertTrue(
        keys.stream().anyMatch(k -> k.id().equals(key.key().id())),
        "the stand-in recovered the key from the journal: " + keys);
    System.out.printf("stand-in answered for a silent entity after %d ms%n", ms);
  }
}
