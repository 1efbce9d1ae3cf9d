package dev.trellis.control.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a lab admin's configuration file may and may not say, and the URL a server derives. */
class ServerSettingsTest {
  @TempDir Path dir;

  private Path config(String text) throws IOException {
    Path file = dir.resolve("trellis.conf");
    Files.writeString(file, text);
    return file;
  }

  @Test
  void aMistypedKeyIsAnErrorNamingItAndTheNearestKnownOne() throws IOException {
    Path file = config("trellis.relay.enable = false\n");
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> ServerSettings.load(file, dir.resolve("data"), "127.0.0.1:0"));
    assertTrue(e.getMessage().contains("unknown setting trellis.relay.enable"), e.getMessage());
    assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
    assertTrue(e.getMessage().contains("did you mean trellis.relay.enabled?"), e.getMessage());
  }

  @Test
  void aKeyFarFromAnyKnownOnePointsToTheReadme() throws IOException {
    Path file = config("trellis { completely-unrelated-thing = 3 }\n");
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> ServerSettings.load(file, dir.resolve("data"), "127.0.0.1:0"));
    assertTrue(e.getMessage().contains("trellis.completely-unrelated-thing"), e.getMessage());
    assertFalse(e.getMessage().contains("did you mean"), e.getMessage());
  }

  @Test
  void everyDocumentedKeyIsAccepted() throws IOException {
    Path file =
        config(
            """
            trellis {
              relay { enabled = false, region = "b", max-queue = 64, others = [] }
              cluster.split-brain-resolver.stable-after = 10s
              stun { enabled = false }
              postgres.max-connections = 4
              ephemeral-timeout = 1m
            }
            pekko.loglevel = "WARNING"
            """);
    ServerSettings s = ServerSettings.load(file, dir.resolve("data"), "127.0.0.1:0");
    assertEquals("127.0.0.1", URI.create(s.serverUrl()).getHost());
  }

  /** A host address when the host has one; else a refusal that says to set trellis.server-url. */
  @Test
  void aServerListeningEverywhereNeverAdvertisesLoopback() {
    ServerSettings s;
    try {
      s = ServerSettings.load(null, dir.resolve("data"), "0.0.0.0:8080");
    } catch (IllegalArgumentException e) {
      assertTrue(HostAddress.reachable().isEmpty(), e.getMessage());
      assertTrue(e.getMessage().contains("set trellis.server-url"), e.getMessage());
      return;
    }
    String host = URI.create(s.serverUrl()).getHost();
    assertFalse(host.startsWith("127.") || host.equals("[::1]"), s.serverUrl());
    assertEquals(HostAddress.reachable().orElseThrow(), host.replaceAll("[\\[\\]]", ""));
    assertEquals(8080, URI.create(s.serverUrl()).getPort());
  }

  @Test
  void editDistance() {
    assertEquals(1, ServerSettings.editDistance("trellis.relay.enable", "trellis.relay.enabled"));
    assertEquals(0, ServerSettings.editDistance("a", "a"));
    assertEquals(3, ServerSettings.editDistance("kitten", "sitting"));
  }
}
