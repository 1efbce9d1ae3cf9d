package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.dataplane.socket.UnixLineServer;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage.NodeInfo;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class LocalApiTest {
  @TempDir Path temp;

  private final StubAgent agent = new StubAgent();
  private LocalApi api;

  static final NodeInfo SELF =
      new NodeInfo(
          1,
          "robot",
          "fleet",
          "a2V5",
          List.of("100.64.0.1", "fd7a:115c:a1e0::1"),
          List.of(),
          true,
          Instant.EPOCH,
          Set.of(),
          null,
          false);

  /** Records what it is asked; answers what the test sets. */
  static final class StubAgent implements AgentControl {
    volatile String lastUp;
    volatile Outcome upOutcome = Outcome.success(SELF);
    volatile List<String> upProgress = List.of();

    @Override
    public CompletableFuture<Outcome> up(
        String loginServer, String authKey, String hostname, Consumer<String> progress) {
      lastUp = loginServer + " " + authKey + " " + hostname;
      upProgress.forEach(progress);
      return CompletableFuture.completedFuture(upOutcome);
    }

    volatile Boolean acceptDns;
    volatile Boolean multicast;

    @Override
    public CompletableFuture<Outcome> setPreferences(Boolean acceptDns, Boolean multicast) {
      if (acceptDns != null) this.acceptDns = acceptDns;
      if (multicast != null) this.multicast = multicast;
      return CompletableFuture.completedFuture(Outcome.success(null));
    }

    @Override
    public CompletableFuture<Outcome> down() {
      return CompletableFuture.completedFuture(Outcome.success(null));
    }

    @Override
    public CompletableFuture<Outcome> logout() {
      return CompletableFuture.completedFuture(
          new Outcome(true, "could not tell the server", null));
    }

    @Override
    public AgentStatus status() {
      return new AgentStatus(
          AgentStatus.RUNNING,
          "https://t.example",
          true,
          null,
          "trellis0",
          41641,
          new AgentStatus.Self("robot", SELF.addresses(), "a2V5", true),
          List.of(
              new AgentStatus.Peer(
                  2,
                  "arm",
                  List.of("100.64.0.2", "fd7a:115c:a1e0::2"),
                  "b2V5",
                  true,
                  Instant.EPOCH,
                  List.of("192.0.2.2:41641"),
                  "192.0.2.2:41641",
                  null,
                  10,
                  20,
                  "direct",
                  null,
                  0.75,
                  0.125,
                  0.0,
                  true)),
          new AgentStatus.Filter(true, 3, 7, Map.of("no-rule", 6L, "malformed", 1L)),
          new AgentStatus.Names("lab.internal", "file", 0, 0, 0, 0, 0),
          AgentStatus.Multicast.OFF);
    }
  }

  @BeforeEach
  void start() throws IOException {
    api = LocalApi.start(temp.resolve("agent.sock"), agent);
  }

  @AfterEach
  void stop() {
    api.close();
  }

  @Test
  void socketIsPrivate() throws IOException {
    assertEquals(
        "rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(api.path())));
  }

  @Test
  void malformedRequestsGetErrorsAndTheConnectionStaysUsable() throws IOException {
    try (SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(api.path()))) {
      BufferedReader in =
          new BufferedReader(
              new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
      String[] bad = {
        "this is not json",
        "[1,2]",
        "42",
        "{}",
        "{\"command\":5}",
        "{\"command\":\"fly\"}",
        "{\"command\":\"up\",\"authKey\":5}",
        "{\"command\":\"ip\",\"peer\":[]}",
        "{\"command\":\"ip\",\"peer\":\"nobody\"}",
        "{\"comm"
      };
      for (String line : bad) {
        JsonNode reply = exchange(channel, in, line);
        assertFalse(reply.path("ok").asBoolean(true), line);
        assertTrue(reply.path("error").asText().length() > 5, line + " → " + reply);
      }
      JsonNode status = exchange(channel, in, "{\"command\":\"status\"}");
      assertTrue(status.path("ok").asBoolean());
      assertEquals("Running", status.path("backendState").asText());
      assertEquals("arm", status.path("peers").get(0).path("hostname").asText());
      assertEquals("1970-01-01T00:00:00Z", status.path("peers").get(0).path("lastSeen").asText());
      assertTrue(status.path("filter").path("policy").asBoolean());
      assertEquals(3, status.path("filter").path("rules").asInt());
      assertEquals(7, status.path("filter").path("dropped").asLong());
      assertEquals(6, status.path("filter").path("droppedBy").path("no-rule").asLong());
    }
  }

  @Test
  void overlongLineEndsOnlyThatConnection() throws IOException {
    try (SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(api.path()))) {
      byte[] huge = new byte[LocalApi.MAX_LINE + 10];
      Arrays.fill(huge, (byte) 'x');
      channel.write(ByteBuffer.wrap(huge));
      BufferedReader in =
          new BufferedReader(
              new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
      assertNull(in.readLine());
    } catch (IOException expected) {
      // the server may close while we still write
    }
    JsonNode status =
        new LocalApiClient(api.path())
            .call(ControlJson.MAPPER.createObjectNode().put("command", "status"));
    assertTrue(status.path("ok").asBoolean());
  }

  @Test
  void upPassesArgumentsAndReportsBothOutcomes() throws IOException {
    LocalApiClient client = new LocalApiClient(api.path());
    JsonNode ok =
        client.call(
            client
                .newRequest("up")
                .put("loginServer", "https://t.example")
                .put("authKey", "k1")
                .putNull("hostname"));
    assertTrue(ok.path("ok").asBoolean());
    assertEquals("robot", ok.path("self").path("hostname").asText());
    assertEquals("https://t.example k1 null", agent.lastUp);

    agent.upOutcome =
        AgentControl.Outcome.failure(
            "login refused by https://t.example: the auth key has expired (EXPIRED)");
    JsonNode refused = client.call(client.newRequest("up").put("authKey", "k2"));
    assertFalse(refused.path("ok").asBoolean());
    assertTrue(refused.path("error").asText().contains("expired"));

    // --accept-dns=false reaches the agent before the login; a non-boolean is refused, unapplied.
    agent.upOutcome = AgentControl.Outcome.success(SELF);
    assertTrue(client.call(client.newRequest("up").put("acceptDns", false)).path("ok").asBoolean());
    assertEquals(Boolean.FALSE, agent.acceptDns);
    JsonNode bad = client.call(client.newRequest("up").put("acceptDns", "maybe"));
    assertFalse(bad.path("ok").asBoolean());
    assertTrue(bad.path("error").asText().contains("acceptDns"), bad.toString());
    assertEquals(Boolean.FALSE, agent.acceptDns);
    assertTrue(client.call(client.newRequest("up").put("multicast", true)).path("ok").asBoolean());
    assertEquals(Boolean.TRUE, agent.multicast);
    assertEquals(Boolean.FALSE, agent.acceptDns, "unsaid, unchanged");
  }

  @Test
  void progressLinesReachTheClientBeforeTheReply() throws IOException {
    agent.upProgress = List.of("the server is busy", "still busy");
    LocalApiClient client = new LocalApiClient(api.path());
    List<String> heard = new CopyOnWriteArrayList<>();
    JsonNode reply =
        client.call(
            client.newRequest("up").put("authKey", "k1"), Duration.ofSeconds(10), heard::add);
    assertTrue(reply.path("ok").asBoolean(), reply.toString());
    assertEquals(List.of("the server is busy", "still busy"), heard);
    // A caller that does not listen for progress gets the reply all the same.
    assertTrue(client.call(client.newRequest("up")).path("ok").asBoolean());
  }

  @Test
  void ipAnswersOwnOrPeerAddresses() throws IOException {
    LocalApiClient client = new LocalApiClient(api.path());
    assertEquals(
        "100.64.0.1", client.call(client.newRequest("ip")).path("addresses").get(0).asText());
    assertEquals(
        "fd7a:115c:a1e0::2",
        client.call(client.newRequest("ip").put("peer", "ARM")).path("addresses").get(1).asText());
    // Fully qualified under the base domain (with or without the final dot), its own name too.
    assertEquals(
        "100.64.0.2",
        client
            .call(client.newRequest("ip").put("peer", "arm.lab.internal."))
            .path("addresses")
            .get(0)
            .asText());
    assertEquals(
        "100.64.0.1",
        client
            .call(client.newRequest("ip").put("peer", "robot.lab.internal"))
            .path("addresses")
            .get(0)
            .asText());
    assertFalse(
        client
            .call(client.newRequest("ip").put("peer", "arm.other.internal"))
            .path("ok")
            .asBoolean());
  }

  @Test
  void logoutWarningIsPassedOn() throws IOException {
    LocalApiClient client = new LocalApiClient(api.path());
    JsonNode reply = client.call(client.newRequest("logout"));
    assertTrue(reply.path("ok").asBoolean());
    assertEquals("could not tell the server", reply.path("warning").asText());
  }

  @Test
  void clientExplainsAMissingAgent() {
    Path nowhere = temp.resolve("none.sock");
    LocalApiClient client = new LocalApiClient(nowhere);
    IOException e =
        assertThrows(
            LocalApiClient.AgentUnavailable.class, () -> client.call(client.newRequest("status")));
    assertEquals(
        "no agent running at " + nowhere + " (start one with: trellis agent)", e.getMessage());
  }

  @Test
  void secondServerOnALiveSocketIsRefused() {
    assertThrows(UnixLineServer.InUse.class, () -> LocalApi.start(api.path(), agent));
  }

  private static JsonNode exchange(SocketChannel channel, BufferedReader in, String line)
      throws IOException {
    channel.write(ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)));
    return ControlJson.MAPPER.readTree(in.readLine());
  }
}
