package dev.trellis.control.authkey;

import static dev.trellis.control.PersistentTestKit.code;
import static dev.trellis.control.PersistentTestKit.ok;
import static dev.trellis.control.PersistentTestKit.randomKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.PersistentTestKit;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.control.Secrets;
import dev.trellis.control.authkey.AuthKeyRegistry.AuthKey;
import dev.trellis.control.authkey.AuthKeyRegistry.AuthKeyGrant;
import dev.trellis.control.authkey.AuthKeyRegistry.CreatedAuthKey;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AuthKeyRegistryTest {

  @TempDir Path dataDir;
  private PersistentTestKit testKit;
  private ActorRef<AuthKeyRegistry.Command> keys;

  @BeforeEach
  void start() {
    testKit = new PersistentTestKit(dataDir);
    keys = testKit.kit().spawn(AuthKeyRegistry.create());
  }

  @AfterEach
  void stop() {
    testKit.close();
  }

  private Result<CreatedAuthKey> create(
      String user, boolean reusable, boolean ephemeral, Instant expiration, Set<String> tags) {
    return testKit.ask(
        keys,
        r -> new AuthKeyRegistry.CreateAuthKey(user, reusable, ephemeral, expiration, tags, r));
  }

  private Result<AuthKeyGrant> use(String secret, String machineKey, Instant now) {
    return testKit.ask(keys, r -> new AuthKeyRegistry.UseAuthKey(secret, machineKey, now, r));
  }

  private List<AuthKey> list(String user) {
    return testKit.ask(keys, r -> new AuthKeyRegistry.ListAuthKeys(user, r));
  }

  @Test
  void createsKeysWithAWellFormedSecret() {
    Instant expiration = Instant.now().plus(Duration.ofDays(1));
    CreatedAuthKey created =
        ok(create("alice", true, true, expiration, Set.of("tag:robot", "tag:lab-2")));
    AuthKey key = created.key();
    assertTrue(
        created.secret().matches("trellis-auth-[a-z0-9]{12}-[0-9a-f]{32}"), created.secret());
    assertEquals(key.id(), created.secret().substring(13, 25));
    assertEquals("alice", key.user());
    assertTrue(key.reusable());
    assertTrue(key.ephemeral());
    assertEquals(expiration, key.expiration());
    assertEquals(Set.of("tag:robot", "tag:lab-2"), key.tags());
    assertFalse(key.used());
    assertFalse(key.expired());
    assertEquals(List.of(key), list("alice"));
  }

  @Test
  void rejectsBadTagsAndPastExpirations() {
    assertEquals(Code.INVALID, code(create("alice", false, false, null, Set.of("robot"))));
    assertEquals(Code.INVALID, code(create("alice", false, false, null, Set.of("tag:Robot"))));
    assertEquals(Code.INVALID, code(create("alice", false, false, null, Set.of("tag:"))));
    assertEquals(
        Code.INVALID, code(create("alice", false, false, Instant.now().minusSeconds(1), Set.of())));
    assertEquals(Code.INVALID, code(create("", false, false, null, Set.of())));
    assertEquals(List.of(), list(null));
  }

  @Test
  void singleUseKeyServesOnlyItsFirstMachine() {
    CreatedAuthKey created = ok(create("alice", false, true, null, Set.of("tag:robot")));
    String first = randomKey();
    Instant now = Instant.now();

    AuthKeyGrant grant = ok(use(created.secret(), first, now));
    assertEquals(new AuthKeyGrant(created.key().id(), "alice", true, Set.of("tag:robot")), grant);
    assertTrue(list("alice").getFirst().used());

    // The same machine retrying its registration is let in again; another machine is not.
    assertEquals(grant, ok(use(created.secret(), first, now)));
    assertEquals(Code.USED, code(use(created.secret(), randomKey(), now)));
  }

  @Test
  void reusableKeyServesManyMachines() {
    CreatedAuthKey created = ok(create("alice", true, false, null, Set.of()));
    for (int i = 0; i < 3; i++) ok(use(created.secret(), randomKey(), Instant.now()));
  }

  @Test
  void rejectsUnknownMalformedAndExpiredSecrets() {
    Instant now = Instant.now();
    CreatedAuthKey created =
        ok(create("alice", true, false, now.plus(Duration.ofHours(1)), Set.of()));
    String secret = created.secret();
    String machine = randomKey();

    assertEquals(
        Code.NOT_FOUND, code(use("trellis-auth-000000000000-" + "0".repeat(32), machine, now)));
    assertEquals(Code.NOT_FOUND, code(use("nonsense", machine, now)));
    assertEquals(Code.NOT_FOUND, code(use(null, machine, now)));
    // Right id, wrong random part.
    String wrong = secret.substring(0, secret.length() - 1) + (secret.endsWith("0") ? "1" : "0");
    assertEquals(Code.NOT_FOUND, code(use(wrong, machine, now)));
    assertEquals(Code.INVALID, code(use(secret, "not-a-key", now)));

    assertEquals(Code.EXPIRED, code(use(secret, machine, now.plus(Duration.ofHours(2)))));
    ok(use(secret, machine, now));

    AuthKey expired =
        ok(
            testKit.ask(
                keys,
                (ActorRef<Result<AuthKey>> r) ->
                    new AuthKeyRegistry.ExpireAuthKey(created.key().id(), now, r)));
    assertTrue(expired.expired());
    assertEquals(Code.EXPIRED, code(use(secret, machine, now)));
    assertEquals(
        Code.NOT_FOUND,
        code(
            testKit.ask(
                keys,
                (ActorRef<Result<AuthKey>> r) ->
                    new AuthKeyRegistry.ExpireAuthKey("nosuchkey000", now, r))));
  }

  @Test
  void listsKeysPerUser() {
    ok(create("alice", false, false, null, Set.of()));
    ok(create("bob", false, false, null, Set.of()));
    ok(create("alice", true, false, null, Set.of()));
    assertEquals(2, list("alice").size());
    assertEquals(1, list("bob").size());
    assertEquals(3, list(null).size());
    assertEquals(List.of(), list("carol"));
  }

  @Test
  void recoversKeysAndUsesAndStoresOnlyHashes() throws IOException {
    Instant now = Instant.now();
    CreatedAuthKey used = ok(create("alice", false, false, null, Set.of("tag:robot")));
    CreatedAuthKey unused = ok(create("bob", false, false, null, Set.of()));
    CreatedAuthKey expired = ok(create("bob", true, false, null, Set.of()));
    String machine = randomKey();
    ok(use(used.secret(), machine, now));
    ok(
        testKit.ask(
            keys,
            (ActorRef<Result<AuthKey>> r) ->
                new AuthKeyRegistry.ExpireAuthKey(expired.key().id(), now, r)));
    List<AuthKey> before = list(null);

    testKit.restart();
    keys = testKit.kit().spawn(AuthKeyRegistry.create());

    assertEquals(before, list(null));
    assertEquals(Code.USED, code(use(used.secret(), randomKey(), now)));
    ok(use(used.secret(), machine, now));
    ok(use(unused.secret(), randomKey(), now));
    assertEquals(Code.EXPIRED, code(use(expired.secret(), randomKey(), now)));

    testKit.close();
    String stored = readAll(dataDir);
    assertTrue(stored.contains(Secrets.sha256Hex(used.secret())), "the hash is stored");
    for (CreatedAuthKey key : List.of(used, unused, expired))
      assertFalse(stored.contains(key.secret()), "secret stored");
    testKit = new PersistentTestKit(dataDir);
  }

  static String readAll(Path dir) throws IOException {
    StringBuilder all = new StringBuilder();
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path file : files.filter(Files::isRegularFile).toList()) {
        all.append(new String(Files.readAllBytes(file), StandardCharsets.ISO_8859_1));
      }
    }
    return all.toString();
  }

  @Test
  void secretsParseOnlyInTheirOwnFormat() {
    assertEquals(
        "abcdefghijkl",
        Secrets.idOf("trellis-auth-", "trellis-auth-abcdefghijkl-" + "a".repeat(32)));
    assertNull(Secrets.idOf("trellis-auth-", "trellis-api-abcdefghijkl-" + "a".repeat(32)));
    assertNull(Secrets.idOf("trellis-auth-", "trellis-auth-ABCDEFGHIJKL-" + "a".repeat(32)));
    assertNull(Secrets.idOf("trellis-auth-", "trellis-auth-abcdefghijkl-" + "g".repeat(32)));
    assertNull(Secrets.idOf("trellis-auth-", "trellis-auth-abcdefghijkl-" + "a".repeat(31)));
  }
}
