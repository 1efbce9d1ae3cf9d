package dev.trellis.control;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.trellis.control.apikey.ApiKeyRegistry.ApiKey;
import dev.trellis.control.apikey.ApiKeyRegistry.CreatedApiKey;
import dev.trellis.control.authkey.AuthKeyRegistry.AuthKey;
import dev.trellis.control.authkey.AuthKeyRegistry.AuthKeyGrant;
import dev.trellis.control.authkey.AuthKeyRegistry.CreatedAuthKey;
import dev.trellis.control.node.AddressAllocator.Allocation;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.user.User;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Results may cross the cluster later: every kind of value must survive Jackson CBOR. */
class ResultSerializationTest {

  private static ActorTestKit kit;

  @BeforeAll
  static void start() {
    kit = ActorTestKit.create("result-serialization");
  }

  @AfterAll
  static void stop() {
    kit.shutdownTestKit();
  }

  @Test
  void everyValueKindRoundTrips() {
    Instant t = Instant.parse("2025-01-02T03:04:05Z");
    var authKey = new AuthKey("abcdefghijkl", "alice", false, true, t, null, Set.of("tag:robot"), true, false);
    var apiKey = new ApiKey("mnopqrstuvwx", t, t.plusSeconds(60), false);
    List<Result<?>> results = List.of(
        Result.ok(new User(1, "alice", t, 2)),
        Result.ok(authKey),
        Result.ok(new CreatedAuthKey(authKey, "trellis-auth-secret")),
        Result.ok(new AuthKeyGrant("abcdefghijkl", "alice", true, Set.of("tag:a", "tag:b"))),
        Result.ok(apiKey),
        Result.ok(new CreatedApiKey(apiKey, "trellis-api-secret")),
        Result.ok(new Allocation(3, "100.64.0.3", "fd7a:115c:a1e0::3", "robot", true)),
        Result.ok(new NodeRecord(3, "m", "n", "alice", "robot", "100.64.0.3", "fd7a:115c:a1e0::3", Set.of(), false, t,
            null, false, true)),
        Result.rejected(Result.Code.USED, "already used"));
    var serialization = SerializationExtension.get(kit.system().classicSystem());
    for (Result<?> result : results) {
      var serializer = serialization.findSerializerFor(result);
      assertEquals("JacksonCborSerializer", serializer.getClass().getSimpleName());
      byte[] bytes = serialization.serialize(result).get();
      Object back = serialization.deserialize(bytes, serializer.identifier(), Serializers.manifestFor(serializer, result)).get();
      assertEquals(result, back);
    }
  }
}
