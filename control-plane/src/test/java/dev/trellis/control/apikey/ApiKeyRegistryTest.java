package dev.trellis.control.apikey;

import static dev.trellis.control.PersistentTestKit.code;
import static dev.trellis.control.PersistentTestKit.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.PersistentTestKit;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.control.apikey.ApiKeyRegistry.ApiKey;
import dev.trellis.control.apikey.ApiKeyRegistry.CreatedApiKey;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ApiKeyRegistryTest {

  @TempDir Path dataDir;
  private PersistentTestKit testKit;
  private ActorRef<ApiKeyRegistry.Command> keys;

  @BeforeEach
  void start() {
    testKit = new PersistentTestKit(dataDir);
    keys = testKit.kit().spawn(ApiKeyRegistry.create());
  }

  @AfterEach
  void stop() {
    testKit.close();
  }

  private Result<CreatedApiKey> create(Instant expiration) {
    return testKit.ask(keys, r -> new ApiKeyRegistry.CreateApiKey(expiration, r));
  }

  private Result<ApiKey> verify(String secret, Instant now) {
    return testKit.ask(keys, r -> new ApiKeyRegistry.VerifyApiKey(secret, now, r));
  }

  @Test
  void createsAndVerifiesKeys() {
    CreatedApiKey created = ok(create(null));
    assertTrue(created.secret().matches("trellis-api-[a-z0-9]{12}-[0-9a-f]{32}"), created.secret());
    assertEquals(created.key().prefix(), created.secret().substring(12, 24));
    assertNull(created.key().expiration());
    assertFalse(created.key().expired());
    assertEquals(created.key(), ok(verify(created.secret(), Instant.now())));
    assertEquals(List.of(created.key()), testKit.ask(keys, ApiKeyRegistry.ListApiKeys::new));
  }

  @Test
  void rejectsUnknownExpiredAndInvalid() {
    Instant now = Instant.now();
    assertEquals(Code.INVALID, code(create(now.minusSeconds(1))));
    CreatedApiKey created = ok(create(now.plus(Duration.ofHours(1))));
    String secret = created.secret();
    assertEquals(Code.NOT_FOUND, code(verify("trellis-api-000000000000-" + "0".repeat(32), now)));
    assertEquals(
        Code.NOT_FOUND, code(verify(secret.replace("trellis-api-", "trellis-auth-"), now)));
    assertEquals(
        Code.NOT_FOUND,
        code(
            verify(
                secret.substring(0, secret.length() - 1) + (secret.endsWith("0") ? "1" : "0"),
                now)));
    assertEquals(Code.NOT_FOUND, code(verify("", now)));
    assertEquals(Code.EXPIRED, code(verify(secret, now.plus(Duration.ofHours(2)))));

    ApiKey expired =
        ok(
            testKit.ask(
                keys,
                (ActorRef<Result<ApiKey>> r) ->
                    new ApiKeyRegistry.ExpireApiKey(created.key().prefix(), now, r)));
    assertTrue(expired.expired());
    assertEquals(Code.EXPIRED, code(verify(secret, now)));
    assertEquals(
        Code.NOT_FOUND,
        code(
            testKit.ask(
                keys,
                (ActorRef<Result<ApiKey>> r) ->
                    new ApiKeyRegistry.ExpireApiKey("nosuchprefix", now, r))));
  }

  @Test
  void recoversKeys() {
    CreatedApiKey live = ok(create(null));
    CreatedApiKey expired = ok(create(null));
    ok(
        testKit.ask(
            keys,
            (ActorRef<Result<ApiKey>> r) ->
                new ApiKeyRegistry.ExpireApiKey(expired.key().prefix(), Instant.now(), r)));
    List<ApiKey> before = testKit.ask(keys, ApiKeyRegistry.ListApiKeys::new);

    testKit.restart();
    keys = testKit.kit().spawn(ApiKeyRegistry.create());

    assertEquals(before, testKit.ask(keys, ApiKeyRegistry.ListApiKeys::new));
    ok(verify(live.secret(), Instant.now()));
    assertEquals(Code.EXPIRED, code(verify(expired.secret(), Instant.now())));
  }
}
