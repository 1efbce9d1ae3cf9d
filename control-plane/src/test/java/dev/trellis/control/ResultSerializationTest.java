package dev.trellis.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.jsontype.NamedType;
import dev.trellis.control.admin.Admin;
import dev.trellis.control.apikey.ApiKeyRegistry.ApiKey;
import dev.trellis.control.apikey.ApiKeyRegistry.CreatedApiKey;
import dev.trellis.control.authkey.AuthKeyRegistry.AuthKey;
import dev.trellis.control.authkey.AuthKeyRegistry.AuthKeyGrant;
import dev.trellis.control.authkey.AuthKeyRegistry.CreatedAuthKey;
import dev.trellis.control.cluster.ClusterStatus;
import dev.trellis.control.node.AddressAllocator.Allocation;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.quality.QualityHistory;
import dev.trellis.control.relay.RelayDirectory;
import dev.trellis.control.server.ResultTypes;
import dev.trellis.control.user.User;
import dev.trellis.persistence.CborSerializable;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializers;
import org.apache.pekko.serialization.jackson.JacksonObjectMapperProvider;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Results cross cluster members: every kind of value registered in {@link ResultTypes} must survive
 * Pekko's Jackson serializers, under its registered name. A kind registered without a sample here
 * fails the test.
 */
class ResultSerializationTest {
  private static final Instant T = Instant.parse("2025-01-02T03:04:05Z");

  private static ActorTestKit kit;

  @BeforeAll
  static void start() {
    kit = ActorTestKit.create("result-serialization");
  }

  @AfterAll
  static void stop() {
    kit.shutdownTestKit();
  }

  /** One value of every kind, by class. */
  private static Map<Class<?>, Object> samples() {
    var authKey =
        new AuthKey(
            "abcdefghijkl", "alice", false, true, T, null, Set.of("tag:robot"), true, false);
    var apiKey = new ApiKey("mnopqrstuvwx", T, T.plusSeconds(60), false);
    var node =
        new NodeRecord(
            3,
            "m",
            "n",
            "alice",
            "robot",
            "100.64.0.3",
            "fd7a:115c:a1e0::3",
            Set.of("tag:a"),
            false,
            T,
            null,
            false,
            true);
    var summary =
        new Admin.NodeSummary(
            new NodeRecord(
                3,
                "m",
                "n",
                "alice",
                "robot",
                "100.64.0.3",
                null,
                Set.of("tag:a"),
                true,
                T,
                T.plusSeconds(3600),
                false,
                false),
            true,
            T.plusSeconds(5),
            List.of("192.0.2.1:41641"));
    String member = "pekko://trellis@10.0.0.1:25520";
    Map<Class<?>, Object> samples = new LinkedHashMap<>();
    for (Object sample :
        List.of(
            new User(1, "alice", T, 2),
            authKey,
            new CreatedAuthKey(authKey, "trellis-auth-secret"),
            new AuthKeyGrant("abcdefghijkl", "alice", true, Set.of("tag:a", "tag:b")),
            apiKey,
            new CreatedApiKey(apiKey, "trellis-api-secret"),
            new Allocation(3, "100.64.0.3", "fd7a:115c:a1e0::3", "robot", true),
            node,
            new Admin.UserList(List.of(new User(1, "alice", T, 2), new User(2, "bob", T, 0))),
            new Admin.AuthKeyList(List.of(authKey)),
            new Admin.NodeList(List.of(summary)),
            new Admin.ApiKeyList(List.of(apiKey)),
            new Admin.LiveKeys(Set.of("a2V5MQ==", "a2V5Mg==")),
            new ClusterStatus(
                member,
                List.of(
                    new ClusterStatus.MemberInfo(member, Set.of("control", "relay"), "Up", true)),
                Map.of("node", Map.of(member, 3))),
            new RelayDirectory.RelayList(
                List.of(
                    new RelayDirectory.RelayInfo(
                        "building-a",
                        "http://10.0.0.1:8080",
                        "a2V5",
                        3478,
                        member,
                        4,
                        12.5,
                        1000,
                        2),
                    new RelayDirectory.RelayInfo(
                        "building-b", null, null, null, null, 0, 0, 0, 0))),
            new QualityHistory.PairList(
                List.of(
                    new QualityHistory.PairNow(
                        1, 2, "relay", "building-a", 3.5, 0.25, 0.0, 8.0e6, 1000),
                    new QualityHistory.PairNow(
                        2, 1, "direct", null, null, null, null, null, 2000))),
            new QualityHistory.PointList(
                List.of(
                    new QualityHistory.Point(60_000, "direct", 1.5, 0.125, 0.0, 1.0e9),
                    new QualityHistory.Point(120_000, "relay", null, null, 1.0, null))))) {
      samples.put(sample.getClass(), sample);
    }
    return samples;
  }

  @Test
  void everyRegisteredKindRoundTripsThroughPekkosSerializer() {
    Map<Class<?>, Object> samples = samples();
    Serialization serialization = SerializationExtension.get(kit.system().classicSystem());
    Set<String> covered = new TreeSet<>();
    for (NamedType type : ResultTypes.TYPES) {
      Object sample = samples.remove(type.getType());
      assertTrue(
          sample != null,
          "no sample of "
              + type.getType().getName()
              + " (\""
              + type.getName()
              + "\"), registered in ResultTypes: add one to ResultSerializationTest.samples");
      assertEquals(Result.ok(sample), roundTrip(serialization, Result.ok(sample)), type.getName());
      covered.add(type.getName());
    }
    assertEquals(Map.of(), samples, "samples of types ResultTypes does not register");
    Set<String> registered = new TreeSet<>();
    ResultTypes.TYPES.forEach(t -> registered.add(t.getName()));
    assertEquals(registered, covered, "every registered name was round-tripped");
    assertEquals(ResultTypes.TYPES.size(), registered.size(), "a name registered twice");
    assertEquals(
        Result.rejected(Result.Code.USED, "already used"),
        roundTrip(serialization, Result.rejected(Result.Code.USED, "already used")));
  }

  private static Object roundTrip(Serialization serialization, Result<?> result) {
    var serializer = serialization.findSerializerFor(result);
    assertEquals("JacksonCborSerializer", serializer.getClass().getSimpleName());
    byte[] bytes = serialization.serialize(result).get();
    return serialization
        .deserialize(bytes, serializer.identifier(), Serializers.manifestFor(serializer, result))
        .get();
  }

  /**
   * Pekko's JSON binding has the names too (the module is registered for every Jackson binding).
   */
  @Test
  void theValueTravelsUnderItsRegisteredName() throws Exception {
    ObjectMapper json =
        JacksonObjectMapperProvider.get(kit.system()).getOrCreate("jackson-json", Optional.empty());
    Map<Class<?>, Object> samples = samples();
    for (NamedType type : ResultTypes.TYPES) {
      Result<?> result = Result.ok(samples.get(type.getType()));
      JsonNode tree = json.readTree(json.writeValueAsBytes(result));
      assertEquals("ok", tree.path("result").asText());
      assertEquals(
          type.getName(), tree.path("value").path("type").asText(), type.getType().getName());
      assertEquals(result, json.readValue(json.writeValueAsBytes(result), Result.class));
    }
  }

  record Unlisted(String name) implements CborSerializable {}

  /**
   * Only the listed kinds: neither an unlisted value nor a class named in the payload is accepted.
   */
  @Test
  void unlistedKindsAreRefused() {
    Serialization serialization = SerializationExtension.get(kit.system().classicSystem());
    Result<?> unlisted = Result.ok(new Unlisted("x"));
    var serializer = serialization.findSerializerFor(unlisted);
    var bytes = serialization.serialize(unlisted);
    assertTrue(
        bytes.isFailure()
            || serialization
                .deserialize(
                    bytes.get(),
                    serializer.identifier(),
                    Serializers.manifestFor(serializer, unlisted))
                .isFailure());

    ObjectMapper json =
        JacksonObjectMapperProvider.get(kit.system()).getOrCreate("jackson-json", Optional.empty());
    assertThrows(
        Exception.class,
        () ->
            json.readValue("{\"result\":\"ok\",\"value\":{\"type\":\"ArrayList\"}}", Result.class));
    assertThrows(
        Exception.class,
        () ->
            json.readValue(
                "{\"result\":\"ok\",\"value\":{\"type\":\""
                    + Unlisted.class.getName()
                    + "\",\"name\":\"x\"}}",
                Result.class));
  }
}
