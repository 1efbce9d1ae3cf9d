package dev.trellis.control.relay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.util.ByteString;
import org.junit.jupiter.api.Test;

/**
 * {@link RawUpgrade} leans on a pekko-http internal; this fails, naming it, if a pekko-http upgrade
 * breaks it: the class must be there with the constructor used, and a raw upgrade on localhost must
 * answer 101 and then carry bytes both ways.
 */
class RawUpgradeTest {
  private static final String BROKEN =
      "RawUpgrade depends on pekko-http's internal "
          + RawUpgrade.INTERNAL_HEADER
          + ", which this pekko-http no longer provides as before; the relay's raw transport (Upgrade: trellis-relay)"
          + " is broken. Fix dev.trellis.control.relay.RawUpgrade: ";

  @Test
  void theInternalHeaderIsStillThere() {
    Class<?> header;
    try {
      header = Class.forName(RawUpgrade.INTERNAL_HEADER);
    } catch (ClassNotFoundException e) {
      throw new AssertionError(BROKEN + "the class is gone", e);
    }
    try {
      header.getConstructor(org.apache.pekko.stream.scaladsl.Flow.class);
    } catch (NoSuchMethodException e) {
      throw new AssertionError(BROKEN + "its constructor no longer takes a scaladsl Flow", e);
    }
  }

  @Test
  void aRawUpgradeCarriesBytesBothWays() throws Exception {
    ActorTestKit kit = ActorTestKit.create("raw-upgrade");
    try {
      AllDirectives d = new AllDirectives() {};
      // Echo, upper-cased, so an answer cannot be the request reflected by something else.
      var route =
          d.path(
              "up",
              () ->
                  d.complete(
                      RawUpgrade.switchingProtocols(
                          "trellis-test",
                          Flow.<ByteString>create()
                              .map(
                                  b ->
                                      ByteString.fromString(
                                          b.utf8String().toUpperCase(Locale.ROOT))))));
      ServerBinding binding =
          Http.get(kit.system())
              .newServerAt("127.0.0.1", 0)
              .bind(route)
              .toCompletableFuture()
              .get(10, TimeUnit.SECONDS);
      try (Socket s = new Socket("127.0.0.1", binding.localAddress().getPort())) {
        s.setSoTimeout(10_000);
        s.getOutputStream()
            .write(
                "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: trellis-test\r\n\r\n"
                    .getBytes(StandardCharsets.US_ASCII));
        InputStream in = s.getInputStream();
        StringBuilder head = new StringBuilder();
        while (!head.toString().endsWith("\r\n\r\n")) {
          int c = in.read();
          if (c < 0) {
            fail(BROKEN + "the connection closed during the upgrade after " + head);
          }
          head.append((char) c);
        }
        assertTrue(head.toString().startsWith("HTTP/1.1 101"), BROKEN + "no 101 but " + head);
        assertTrue(
            head.toString().toLowerCase(Locale.ROOT).contains("upgrade: trellis-test"),
            BROKEN + head);
        s.getOutputStream().write("hello".getBytes(StandardCharsets.US_ASCII));
        byte[] answer = new byte[5];
        try {
          new DataInputStream(in).readFully(answer);
        } catch (IOException e) {
          throw new AssertionError(
              BROKEN + "no bytes came back through the upgraded connection", e);
        }
        assertArrayEquals(
            "HELLO".getBytes(StandardCharsets.US_ASCII), answer, BROKEN + "other bytes came back");
      } finally {
        binding.unbind();
      }
    } finally {
      kit.shutdownTestKit();
    }
  }
}
