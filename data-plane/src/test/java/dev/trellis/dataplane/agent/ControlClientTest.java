package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.wireguard.Curve25519;
import java.net.URI;
import java.net.http.HttpClient;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The node's end of the control channel against a hand-made server. */
class ControlClientTest {
  /** What a {@link ControlClient.Listener} heard, in order. */
  private static final class Heard implements ControlClient.Listener {
    final BlockingQueue<ControlMessage> messages = new LinkedBlockingQueue<>();
    final BlockingQueue<String> closed = new LinkedBlockingQueue<>();

    @Override
    public void onMessage(ControlMessage message) {
      messages.add(message);
    }

    @Override
    public void onClosed(String reason) {
      closed.add(reason);
    }
  }

  private final HttpClient http = ControlClient.newHttpClient();

  private ControlClient connect(TinyControlServer server, Heard heard) throws Exception {
    return ControlClient.connect(
            http, URI.create(server.url()), Curve25519.generatePrivateKey(), heard)
        .get(10, TimeUnit.SECONDS);
  }

  /**
   * A server that dies right behind its last message: the end must still reach the listener. The
   * JDK's WebSocket lost it whenever it arrived while that message was being delivered (the node
   * then noticed only when a later keepalive failed), so this runs many rounds.
   */
  @Test
  void theEndOfAConnectionRightBehindAMessageIsHeard() throws Exception {
    try (TinyControlServer server = new TinyControlServer()) {
      for (int round = 0; round < 40; round++) {
        Heard heard = new Heard();
        ControlClient client = connect(server, heard);
        TinyControlServer.Connection c = server.accept();
        c.send(new ControlMessage.Pong(round));
        c.kill();
        assertInstanceOf(ControlMessage.Pong.class, heard.messages.poll(5, TimeUnit.SECONDS));
        String reason = heard.closed.poll(5, TimeUnit.SECONDS);
        assertNotNull(reason, "round " + round + ": the end of the connection was not reported");
        assertTrue(reason.contains("closed the connection"), reason);
        assertTrue(!client.isOpen());
        assertTrue(client.send(new ControlMessage.Ping(1)).isCompletedExceptionally());
      }
    }
  }

  /** Closing from the node reports the end once. */
  @Test
  void aCloseFromTheNodeIsReportedOnce() throws Exception {
    try (TinyControlServer server = new TinyControlServer()) {
      Heard heard = new Heard();
      ControlClient client = connect(server, heard);
      TinyControlServer.Connection c = server.accept();
      client.send(new ControlMessage.Ping(7));
      assertEquals(new ControlMessage.Ping(7), c.receive());
      client.close();
      assertEquals("closed by the node", heard.closed.poll(5, TimeUnit.SECONDS));
      assertEquals(null, heard.closed.poll(300, TimeUnit.MILLISECONDS));
    }
  }
}
