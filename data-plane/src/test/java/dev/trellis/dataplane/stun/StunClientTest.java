package dev.trellis.dataplane.stun;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.proto.stun.StunMessage;
import dev.trellis.proto.stun.StunMessage.Attribute;
import dev.trellis.proto.stun.StunMessage.MessageClass;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * The client's retransmission schedule, timeout and response recognition, against a socket that
 * answers late or never. The server and client together: {@code StunServerTest} in control-plane.
 */
class StunClientTest {
  private static final InetSocketAddress CLIENT_V4 =
      new InetSocketAddress(ip("198.51.100.9"), 40001);
  private static final InetSocketAddress CLIENT_V6 =
      new InetSocketAddress(ip("2001:db8::9"), 40002);

  private static InetAddress ip(String s) {
    try {
      return InetAddress.getByName(s);
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  @Test
  void clientRetransmitsUntilAnswered() throws Exception {
    // A server that ignores the first two requests: the third, 0.5 + 1 s later, is answered.
    try (DatagramChannel fake = DatagramChannel.open(StandardProtocolFamily.INET)) {
      fake.bind(new InetSocketAddress("127.0.0.1", 0));
      InetSocketAddress at = (InetSocketAddress) fake.getLocalAddress();
      List<Long> arrivals = new CopyOnWriteArrayList<>();
      Thread t =
          Thread.ofVirtual()
              .start(
                  () -> {
                    try {
                      ByteBuffer buf = ByteBuffer.allocate(2048);
                      long t0 = 0;
                      for (int i = 0; i < 3; i++) {
                        buf.clear();
                        InetSocketAddress from = (InetSocketAddress) fake.receive(buf);
                        long now = System.nanoTime();
                        t0 = i == 0 ? now : t0;
                        arrivals.add((now - t0) / 1_000_000);
                        if (i == 2) {
                          fake.send(
                              ByteBuffer.wrap(
                                  StunResponder.answer(buf.array(), buf.position(), from)),
                              from);
                        }
                      }
                    } catch (IOException e) {
                      // closed
                    }
                  });
      InetSocketAddress mapped = StunClient.bindingRequest(at, Duration.ofSeconds(5));
      t.join();
      assertEquals(ip("127.0.0.1"), mapped.getAddress());
      assertEquals(3, arrivals.size());
      assertTrue(arrivals.get(1) >= 450 && arrivals.get(1) < 1000, arrivals.toString());
      assertTrue(arrivals.get(2) >= 1400 && arrivals.get(2) < 2200, arrivals.toString());
    }
  }

  @Test
  void clientTimesOutAndReportsErrors() throws Exception {
    assertEquals(
        List.of(0L, 500L, 1500L, 3500L, 7500L, 15500L, 31500L),
        StunClient.schedule(Duration.ofMillis(500)));
    try (DatagramChannel silent = DatagramChannel.open(StandardProtocolFamily.INET)) {
      silent.bind(new InetSocketAddress("127.0.0.1", 0));
      long start = System.nanoTime();
      SocketTimeoutException e =
          assertThrows(
              SocketTimeoutException.class,
              () ->
                  StunClient.bindingRequest(
                      (InetSocketAddress) silent.getLocalAddress(), Duration.ofMillis(1200)));
      long took = (System.nanoTime() - start) / 1_000_000;
      assertTrue(took >= 1100 && took < 3000, "took " + took + " ms");
      assertTrue(e.getMessage().contains("no STUN Binding response"), e.getMessage());
      int requests = 0;
      silent.configureBlocking(false);
      ByteBuffer buf = ByteBuffer.allocate(2048);
      while (silent.receive(buf) != null) {
        StunMessage m = StunMessage.parse(buf.array(), 0, buf.position());
        assertTrue(m.isBindingRequest() && m.fingerprinted());
        buf.clear();
        requests++;
      }
      assertEquals(2, requests); // at 0 and 500 ms; the next would be at 1500
    }
    // Error responses, and responses to other transactions, through the pure helper.
    StunClient.Transaction tx = new StunClient.Transaction();
    byte[] other =
        new StunMessage(
                1,
                MessageClass.SUCCESS_RESPONSE,
                StunMessage.newTransactionId(),
                List.of(Attribute.xorMappedAddress(CLIENT_V4, new byte[12])))
            .encode(true);
    assertNull(tx.accept(other, 0, other.length));
    byte[] error =
        new StunMessage(
                1,
                MessageClass.ERROR_RESPONSE,
                tx.id(),
                List.of(Attribute.errorCode(420, "Unknown Attribute")))
            .encode(true);
    assertEquals(
        new StunClient.Outcome.Error(420, "Unknown Attribute"), tx.accept(error, 0, error.length));
    StunClient.Outcome ok =
        tx.accept(
            ByteBuffer.wrap(StunResponder.answer(tx.request(), tx.request().length, CLIENT_V6)));
    assertEquals(CLIENT_V6, assertInstanceOf(StunClient.Outcome.Mapped.class, ok).address());
  }
}
