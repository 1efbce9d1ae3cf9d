package dev.trellis.control.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.trellis.control.server.ServerSettings;
import dev.trellis.control.server.TrellisServer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

class ClusterSettingsTest {
  private static ClusterSettings parse(String hocon) {
    return ClusterSettings.from(
        ConfigFactory.parseString(hocon).withFallback(ConfigFactory.load()));
  }

  @Test
  void defaultsAreAClusterOfItsOwnWithBothRoles() {
    ClusterSettings s = parse("");
    assertTrue(s.standalone());
    assertEquals(Set.of("control", "relay"), s.roles());
    Config pekko = s.pekkoConfig();
    assertEquals("cluster", pekko.getString("pekko.actor.provider"));
    assertEquals(
        "keep-majority", pekko.getString("pekko.cluster.split-brain-resolver.active-strategy"));
    assertEquals(0, pekko.getInt("pekko.remote.artery.canonical.port"));
  }

  @Test
  void seedNodesBecomePekkoAddressesAndNeedAFixedPort() {
    ClusterSettings s =
        parse(
            "trellis.cluster { port = 25520, seed-nodes = [\"10.0.1.5:25520\", \"10.0.2.5:25520\"], roles = [relay] }");
    assertEquals(
        List.of("pekko://trellis@10.0.1.5:25520", "pekko://trellis@10.0.2.5:25520"),
        s.pekkoConfig().getStringList("pekko.cluster.seed-nodes"));
    assertEquals(List.of("relay"), s.pekkoConfig().getStringList("pekko.cluster.roles"));
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> parse("trellis.cluster.seed-nodes = [\"10.0.1.5:25520\"]"));
    assertTrue(e.getMessage().contains("port must be fixed"), e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> parse("trellis.cluster { port = 1, seed-nodes = [\"nohost\"] }"));
    assertTrue(e.getMessage().contains("HOST:PORT"), e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class, () -> parse("trellis.cluster.roles = [coffee]"));
    assertTrue(e.getMessage().contains("roles"), e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> parse("trellis.cluster.split-brain-resolver.active-strategy = hope"));
    assertTrue(e.getMessage().contains("active-strategy"), e.getMessage());
  }

  @Test
  void aServerAloneMustHoldControlAndEveryMemberSomeRole() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class, () -> parse("trellis.cluster.roles = [relay]"));
    assertTrue(e.getMessage().contains("must hold the control role"), e.getMessage());
    ClusterSettings relayOnly =
        parse(
            "trellis.cluster { port = 25520, seed-nodes = [\"10.0.1.5:25520\"], roles = [relay] }");
    assertTrue(relayOnly.holds("relay"));
    assertFalse(relayOnly.holds("control"));
    e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                parse(
                    "trellis.relay.enabled = false\ntrellis.cluster { port = 25520, seed-nodes = [\"10.0.1.5:25520\"], roles = [relay] }"));
    assertTrue(e.getMessage().contains("no role"), e.getMessage());
    ClusterSettings noRelay = parse("trellis.relay.enabled = false");
    assertEquals(Set.of("control"), noRelay.roles());
    assertEquals(List.of("control"), noRelay.pekkoConfig().getStringList("pekko.cluster.roles"));
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> parse("trellis.relay.enabled = false\ntrellis.cluster.roles = [relay]"));
    assertTrue(e.getMessage().contains("no role"), e.getMessage());
  }

  @Test
  @Timeout(60)
  void aServerAloneIsAnUpMemberAndSaysSoOnItsReadinessProbe(@TempDir Path dir) throws Exception {
    try (TrellisServer server =
        TrellisServer.start(ServerSettings.load(null, dir, "127.0.0.1:0"))) {
      HttpClient http = HttpClient.newHttpClient();
      HttpResponse<String> alive =
          http.send(
              HttpRequest.newBuilder(URI.create(server.url() + "/health/alive")).build(),
              HttpResponse.BodyHandlers.ofString());
      assertEquals(200, alive.statusCode());
      HttpResponse<String> ready;
      long deadline = System.nanoTime() + 30_000_000_000L;
      do {
        ready =
            http.send(
                HttpRequest.newBuilder(URI.create(server.url() + "/health/ready")).build(),
                HttpResponse.BodyHandlers.ofString());
      } while (ready.statusCode() != 200 && System.nanoTime() < deadline && sleep());
      assertEquals(200, ready.statusCode(), ready.body());
      assertTrue(ready.body().contains("\"member\":\"Up\""), ready.body());
    }
  }

  private static boolean sleep() throws InterruptedException {
    Thread.sleep(100);
    return true;
  }
}
