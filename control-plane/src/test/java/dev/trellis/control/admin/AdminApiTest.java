package dev.trellis.control.admin;

import static dev.trellis.control.PersistentTestKit.randomKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.control.Result;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeDirectory;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.server.LocalAdminAccess;
import dev.trellis.control.server.ServerSettings;
import dev.trellis.control.server.TrellisServer;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.proto.control.ControlJson;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The admin HTTP API against a real server on a real journal. */
class AdminApiTest {

  @TempDir static Path dataDir;
  private static TrellisServer server;
  private static String apiKey;
  private static final HttpClient HTTP = HttpClient.newHttpClient();

  @BeforeAll
  static void start() throws Exception {
    server = TrellisServer.start(ServerSettings.load(null, dataDir, "127.0.0.1:0"));
    apiKey = LocalAdminAccess.read(dataDir).apiKey();
  }

  @AfterAll
  static void stop() {
    server.close();
  }

  record Reply(int status, JsonNode json) {
    String error() {
      return json.path("error").asText();
    }
  }

  static Reply call(String method, String path, String body, String key) throws Exception {
    var request =
        HttpRequest.newBuilder(URI.create(server.url() + path))
            .timeout(Duration.ofSeconds(30))
            .method(
                method,
                body == null
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(body));
    if (key != null) request.header("Authorization", "Bearer " + key);
    if (body != null) request.header("Content-Type", "application/json");
    HttpResponse<String> response =
        HTTP.send(request.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
    assertEquals(
        "application/json", response.headers().firstValue("Content-Type").orElse(""), path);
    return new Reply(response.statusCode(), ControlJson.MAPPER.readTree(response.body()));
  }

  static Reply call(String method, String path, String body) throws Exception {
    return call(method, path, body, apiKey);
  }

  static Reply ok(int status, Reply reply) {
    assertEquals(status, reply.status(), reply.json().toString());
    return reply;
  }

  static Reply rejected(int status, Reply reply) {
    assertEquals(status, reply.status(), reply.json().toString());
    assertFalse(reply.error().isBlank(), "error message: " + reply.json());
    return reply;
  }

  static List<String> names(JsonNode array, String field) {
    List<String> out = new ArrayList<>();
    array.forEach(n -> out.add(n.path(field).asText()));
    return out;
  }

  /** A node registered the way a control session does it, bypassing Admin. */
  static NodeRecord register(String user, String hostname) throws Exception {
    var s = server.services();
    var scheduler = server.system().scheduler();
    String machineKey = randomKey();
    var allocation =
        AskPattern.<AddressAllocator.Command, Result<AddressAllocator.Allocation>>ask(
                s.allocator(),
                r -> new AddressAllocator.Allocate(machineKey, hostname, r),
                Duration.ofSeconds(10),
                scheduler)
            .toCompletableFuture()
            .get(10, TimeUnit.SECONDS)
            .orElseThrow();
    NodeRecord node =
        AskPattern.<NodeDirectory.Command, Result<NodeRecord>>ask(
                s.nodes(),
                r ->
                    new NodeDirectory.Forward(
                        allocation.nodeId(),
                        new NodeEntity.Register(
                            machineKey,
                            randomKey(),
                            user,
                            allocation.hostname(),
                            allocation.ipv4(),
                            allocation.ipv6(),
                            Set.of(),
                            false,
                            null,
                            Instant.now(),
                            r)),
                Duration.ofSeconds(10),
                scheduler)
            .toCompletableFuture()
            .get(10, TimeUnit.SECONDS)
            .orElseThrow();
    s.users().tell(new UserRegistry.AttachNode(user, node.id(), server.system().ignoreRef()));
    return node;
  }

  @Test
  void everyRequestNeedsAValidApiKey() throws Exception {
    Reply missing = rejected(401, call("GET", "/api/v1/users", null, null));
    assertTrue(missing.error().contains("Bearer"), missing.error());
    rejected(
        401,
        call(
            "GET",
            "/api/v1/users",
            null,
            "trellis-api-nosuchkey000-0123456789abcdef0123456789abcdef"));
    rejected(401, call("GET", "/api/v1/users", null, "garbage"));
    rejected(401, call("POST", "/api/v1/users", "{\"name\":\"sneaky\"}", "garbage"));
    rejected(401, call("GET", "/api/v1/no-such-thing", null, null));
    assertFalse(
        names(call("GET", "/api/v1/users", null).json().path("users"), "name").contains("sneaky"));

    // An expired key stops working at once.
    Reply created = ok(201, call("POST", "/api/v1/apikeys", "{\"expiration\":\"1h\"}"));
    String secret = created.json().path("secret").asText();
    ok(200, call("GET", "/api/v1/users", null, secret));
    ok(
        200,
        call(
            "POST",
            "/api/v1/apikeys/" + created.json().path("key").path("prefix").asText() + "/expire",
            null));
    Reply expired = rejected(401, call("GET", "/api/v1/users", null, secret));
    assertTrue(expired.error().contains("expired"), expired.error());
  }

  @Test
  void users() throws Exception {
    Reply created = ok(201, call("POST", "/api/v1/users", "{\"name\":\"u-alice\"}"));
    assertEquals("u-alice", created.json().path("name").asText());
    assertTrue(created.json().path("id").asLong() > 0);
    assertTrue(created.json().path("createdAt").isTextual());
    Reply duplicate = rejected(409, call("POST", "/api/v1/users", "{\"name\":\"u-alice\"}"));
    assertTrue(duplicate.error().contains("already exists"), duplicate.error());
    assertEquals("ALREADY_EXISTS", duplicate.json().path("code").asText());
    rejected(400, call("POST", "/api/v1/users", "{\"name\":\"Not Valid\"}"));
    assertTrue(
        names(ok(200, call("GET", "/api/v1/users", null)).json().path("users"), "name")
            .contains("u-alice"));

    register("u-alice", "u-robot");
    Reply conflict = rejected(409, call("DELETE", "/api/v1/users/u-alice", null));
    assertTrue(conflict.error().contains("node"), conflict.error());

    ok(201, call("POST", "/api/v1/users", "{\"name\":\"u-bob\"}"));
    assertEquals(
        "u-bob", ok(200, call("DELETE", "/api/v1/users/u-bob", null)).json().path("name").asText());
    rejected(404, call("DELETE", "/api/v1/users/u-bob", null));
    assertFalse(
        names(call("GET", "/api/v1/users", null).json().path("users"), "name").contains("u-bob"));
  }

  @Test
  void authKeys() throws Exception {
    ok(201, call("POST", "/api/v1/users", "{\"name\":\"k-alice\"}"));
    ok(201, call("POST", "/api/v1/users", "{\"name\":\"k-bob\"}"));
    Reply created =
        ok(
            201,
            call(
                "POST",
                "/api/v1/authkeys",
                "{\"user\":\"k-alice\",\"reusable\":true,\"ephemeral\":true,\"expiration\":\"24h\",\"tags\":[\"tag:robot\"]}"));
    JsonNode key = created.json().path("key");
    assertTrue(
        created
            .json()
            .path("secret")
            .asText()
            .startsWith("trellis-auth-" + key.path("id").asText()));
    assertEquals("k-alice", key.path("user").asText());
    assertTrue(key.path("reusable").asBoolean() && key.path("ephemeral").asBoolean());
    assertEquals("tag:robot", key.path("tags").get(0).asText());
    Duration left = Duration.between(Instant.now(), Instant.parse(key.path("expiration").asText()));
    assertTrue(
        left.compareTo(Duration.ofHours(23)) > 0 && left.compareTo(Duration.ofHours(24)) <= 0,
        left.toString());

    Reply iso =
        ok(201, call("POST", "/api/v1/authkeys", "{\"user\":\"k-bob\",\"expiration\":\"PT1H\"}"));
    assertFalse(iso.json().path("key").path("reusable").asBoolean());
    ok(
        201,
        call("POST", "/api/v1/authkeys", "{\"user\":\"k-bob\",\"expiration\":null,\"tags\":null}"));

    rejected(404, call("POST", "/api/v1/authkeys", "{\"user\":\"k-nobody\"}"));
    rejected(400, call("POST", "/api/v1/authkeys", "{\"user\":\"k-alice\",\"tags\":[\"robot\"]}"));
    Reply badDuration =
        rejected(
            400,
            call("POST", "/api/v1/authkeys", "{\"user\":\"k-alice\",\"expiration\":\"soon\"}"));
    assertTrue(badDuration.error().contains("expiration"), badDuration.error());

    assertEquals(
        List.of(key.path("id").asText()),
        names(
            ok(200, call("GET", "/api/v1/authkeys?user=k-alice", null)).json().path("authKeys"),
            "id"));
    assertEquals(
        2, call("GET", "/api/v1/authkeys?user=k-bob", null).json().path("authKeys").size());
    assertTrue(call("GET", "/api/v1/authkeys", null).json().path("authKeys").size() >= 3);
    rejected(404, call("GET", "/api/v1/authkeys?user=k-nobody", null));

    Reply expired =
        ok(200, call("POST", "/api/v1/authkeys/" + key.path("id").asText() + "/expire", null));
    assertTrue(expired.json().path("expired").asBoolean());
    rejected(404, call("POST", "/api/v1/authkeys/nosuchkey000/expire", null));
  }

  @Test
  void qualityAnswersEvenBeforeAnyReportAndRefusesBadInput() throws Exception {
    assertTrue(ok(200, call("GET", "/api/v1/quality", null)).json().path("pairs").isArray());
    JsonNode points =
        ok(200, call("GET", "/api/v1/quality/1/2?since=3600", null)).json().path("points");
    assertEquals(0, points.size());
    rejected(400, call("GET", "/api/v1/quality/x/2", null));
    rejected(400, call("GET", "/api/v1/quality/1/2?since=-5", null));
    rejected(400, call("GET", "/api/v1/quality/1/2?since=soon", null));
    rejected(405, call("POST", "/api/v1/quality", "{}"));
    rejected(401, call("GET", "/api/v1/quality", null, "not-a-key"));
  }

  @Test
  void nodes() throws Exception {
    ok(201, call("POST", "/api/v1/users", "{\"name\":\"n-alice\"}"));
    ok(201, call("POST", "/api/v1/users", "{\"name\":\"n-bob\"}"));
    NodeRecord one = register("n-alice", "n-alpha");
    NodeRecord two = register("n-bob", "n-beta");

    JsonNode listed = ok(200, call("GET", "/api/v1/nodes?user=n-alice", null)).json().path("nodes");
    assertEquals(1, listed.size());
    JsonNode node = listed.get(0);
    assertEquals(one.id(), node.path("id").asLong());
    assertEquals("n-alpha", node.path("hostname").asText());
    assertEquals(one.ipv4(), node.path("ipv4").asText());
    assertEquals(one.ipv6(), node.path("ipv6").asText());
    assertFalse(node.path("online").asBoolean());
    assertTrue(node.has("lastSeen") && node.path("endpoints").isArray());
    assertTrue(
        names(call("GET", "/api/v1/nodes", null).json().path("nodes"), "hostname")
            .containsAll(List.of("n-alpha", "n-beta")));
    rejected(404, call("GET", "/api/v1/nodes?user=n-nobody", null));

    Reply taken =
        rejected(
            409, call("POST", "/api/v1/nodes/" + two.id() + "/rename", "{\"name\":\"n-alpha\"}"));
    assertTrue(taken.error().contains("n-alpha"), taken.error());
    assertEquals(
        "n-beta",
        call("GET", "/api/v1/nodes?user=n-bob", null)
            .json()
            .path("nodes")
            .get(0)
            .path("hostname")
            .asText());
    assertEquals(
        "n-gamma",
        ok(200, call("POST", "/api/v1/nodes/" + two.id() + "/rename", "{\"name\":\"n-gamma\"}"))
            .json()
            .path("hostname")
            .asText());
    rejected(400, call("POST", "/api/v1/nodes/" + two.id() + "/rename", "{\"name\":\"-bad-\"}"));

    JsonNode tagged =
        ok(
                200,
                call(
                    "POST",
                    "/api/v1/nodes/" + one.id() + "/tags",
                    "{\"tags\":[\"tag:b\",\"tag:a\"]}"))
            .json();
    assertEquals("[\"tag:a\",\"tag:b\"]", tagged.path("tags").toString());
    rejected(400, call("POST", "/api/v1/nodes/" + one.id() + "/tags", "{\"tags\":[\"nope\"]}"));

    assertTrue(
        ok(200, call("POST", "/api/v1/nodes/" + one.id() + "/expire", null))
            .json()
            .path("expired")
            .asBoolean());
    rejected(404, call("POST", "/api/v1/nodes/999999/expire", null));
    rejected(400, call("POST", "/api/v1/nodes/abc/expire", null));

    assertEquals(
        one.id(),
        ok(200, call("DELETE", "/api/v1/nodes/" + one.id(), null)).json().path("id").asLong());
    rejected(404, call("DELETE", "/api/v1/nodes/" + one.id(), null));
    assertEquals(0, call("GET", "/api/v1/nodes?user=n-alice", null).json().path("nodes").size());
    ok(200, call("DELETE", "/api/v1/users/n-alice", null)); // detached: no nodes left
    // The freed name can be taken by another node.
    ok(200, call("POST", "/api/v1/nodes/" + two.id() + "/rename", "{\"name\":\"n-alpha\"}"));
  }

  @Test
  void apiKeys() throws Exception {
    Reply created = ok(201, call("POST", "/api/v1/apikeys", "{\"expiration\":\"90d\"}"));
    String prefix = created.json().path("key").path("prefix").asText();
    assertTrue(created.json().path("secret").asText().startsWith("trellis-api-" + prefix));
    assertNotNull(created.json().path("key").path("expiration").textValue());
    Reply empty = ok(201, call("POST", "/api/v1/apikeys", null));
    assertTrue(empty.json().path("key").path("expiration").isNull());
    ok(201, call("POST", "/api/v1/apikeys", "{}"));
    assertTrue(
        names(ok(200, call("GET", "/api/v1/apikeys", null)).json().path("apiKeys"), "prefix")
            .contains(prefix));
    assertTrue(
        ok(200, call("POST", "/api/v1/apikeys/" + prefix + "/expire", null))
            .json()
            .path("expired")
            .asBoolean());
    rejected(404, call("POST", "/api/v1/apikeys/nosuchprefix/expire", null));
    rejected(400, call("POST", "/api/v1/apikeys", "{\"expiration\":\"-5d\"}"));
  }

  @Test
  void badBodiesChangeNothing() throws Exception {
    JsonNode usersBefore = call("GET", "/api/v1/users", null).json();
    JsonNode keysBefore = call("GET", "/api/v1/authkeys", null).json();
    JsonNode apiKeysBefore = call("GET", "/api/v1/apikeys", null).json();

    assertTrue(
        rejected(400, call("POST", "/api/v1/users", "{\"name\":"))
            .error()
            .contains("malformed JSON"));
    rejected(400, call("POST", "/api/v1/users", "not json"));
    rejected(400, call("POST", "/api/v1/users", "{\"name\":\"b-x\"} trailing"));
    rejected(400, call("POST", "/api/v1/users", "{\"name\":\"b-x\",\"name\":\"b-y\"}"));
    assertTrue(
        rejected(400, call("POST", "/api/v1/users", "{\"name\":42}"))
            .error()
            .contains("must be a string"));
    assertTrue(
        rejected(400, call("POST", "/api/v1/users", "{\"name\":\"b-x\",\"admin\":true}"))
            .error()
            .contains("unknown field"));
    rejected(400, call("POST", "/api/v1/users", "[\"b-x\"]"));
    rejected(400, call("POST", "/api/v1/users", "{}"));
    rejected(400, call("POST", "/api/v1/users", null));
    rejected(400, call("POST", "/api/v1/authkeys", "{\"user\":\"b-x\",\"reusable\":\"yes\"}"));
    rejected(400, call("POST", "/api/v1/authkeys", "{\"user\":\"b-x\",\"tags\":\"tag:a\"}"));
    rejected(400, call("POST", "/api/v1/authkeys", "{\"user\":\"b-x\",\"tags\":[1]}"));
    rejected(400, call("POST", "/api/v1/authkeys", "{\"user\":\"b-x\",\"expiration\":24}"));
    rejected(400, call("POST", "/api/v1/apikeys", "{\"expires\":\"1h\"}"));
    rejected(400, call("POST", "/api/v1/apikeys", "{\"expiration\":\"1h\""));
    String big = "{\"name\":\"b-big\",\"pad\":\"" + "x".repeat(70 * 1024) + "\"}";
    Reply tooLarge = rejected(413, call("POST", "/api/v1/users", big));
    assertTrue(tooLarge.error().contains("64 KiB"), tooLarge.error());
    rejected(413, call("POST", "/api/v1/authkeys", big));
    // Without Content-Length (chunked), the size shows only while reading: still 413.
    var chunked =
        HttpRequest.newBuilder(URI.create(server.url() + "/api/v1/users"))
            .timeout(Duration.ofSeconds(30))
            .header("Authorization", "Bearer " + apiKey)
            .header("Content-Type", "application/json")
            .POST(
                HttpRequest.BodyPublishers.ofInputStream(
                    () -> new ByteArrayInputStream(big.getBytes(StandardCharsets.UTF_8))))
            .build();
    assertEquals(
        413,
        HTTP.send(chunked, HttpResponse.BodyHandlers.ofString()).statusCode(),
        "chunked oversized body");

    assertEquals(usersBefore, call("GET", "/api/v1/users", null).json());
    assertEquals(keysBefore, call("GET", "/api/v1/authkeys", null).json());
    assertEquals(apiKeysBefore, call("GET", "/api/v1/apikeys", null).json());
  }

  @Test
  void unknownPathsAndMethods() throws Exception {
    assertTrue(
        rejected(404, call("GET", "/api/v1/nothing-here", null))
            .error()
            .contains("/api/v1/nothing-here"));
    rejected(404, call("GET", "/api/v2/users", null));
    rejected(404, call("GET", "/api/v1/users/x/y", null));
    rejected(405, call("PUT", "/api/v1/users", "{}"));
    rejected(405, call("GET", "/api/v1/nodes/1/rename", null));
  }
}
