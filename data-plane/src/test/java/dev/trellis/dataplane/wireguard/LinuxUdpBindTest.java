package dev.trellis.dataplane.wireguard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.net.BindException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The FFM UDP socket on loopback: GSO runs out, GRO batches in, and the portable fallback. */
@Timeout(30)
class LinuxUdpBindTest {

  private static byte[] run(int count, int size, int last) {
    byte[] b = new byte[(count - 1) * size + last];
    for (int i = 0; i < b.length; i++) {
      b[i] = (byte) (i / size * 7 + i);
    }
    return b;
  }

  /** Receives until {@code total} bytes came; returns them in order, and counts the calls. */
  private static byte[] receiveAll(UdpBind bind, int total, int[] calls, int[] segmentSizes)
      throws Exception {
    UdpBind.Received r = new UdpBind.Received(LinuxUdpBind.RECEIVE_CAPACITY);
    ByteArrayOutputStream all = new ByteArrayOutputStream();
    while (all.size() < total) {
      assertTrue(bind.receive(r));
      all.write(r.data, 0, r.length);
      if (segmentSizes != null) {
        segmentSizes[calls[0]] = r.segmentSize;
      }
      calls[0]++;
    }
    return all.toByteArray();
  }

  @Test
  void aRunSentInOneCallArrivesAsOneBatchOnAGroSocket() throws Exception {
    try (LinuxUdpBind tx = LinuxUdpBind.tryOpen(0, true, true);
        LinuxUdpBind rx = LinuxUdpBind.tryOpen(0, true, true)) {
      assertNotNull(tx);
      assertNotNull(rx);
      assertTrue(tx.segmentsInOneCall(), "UDP GSO on loopback");
      assertTrue(rx.coalescesReceives(), "UDP GRO on loopback");
      byte[] data = run(21, 1000, 300);
      tx.sendSegments(data, 0, data.length, 1000, new InetSocketAddress("127.0.0.1", rx.port()));
      int[] calls = {0};
      int[] sizes = new int[64];
      assertArrayEquals(data, receiveAll(rx, data.length, calls, sizes));
      assertEquals(1, calls[0], "21 datagrams in one receive");
      assertEquals(1000, sizes[0], "the segment size reported with the batch");
    }
  }

  @Test
  void aSocketWithoutGroGetsTheRunDatagramByDatagram() throws Exception {
    try (LinuxUdpBind tx = LinuxUdpBind.tryOpen(0, true, true);
        ChannelUdpBind rx = ChannelUdpBind.open(0)) {
      byte[] data = run(10, 1200, 1200);
      tx.sendSegments(data, 0, data.length, 1200, new InetSocketAddress("127.0.0.1", rx.port()));
      int[] calls = {0};
      assertArrayEquals(data, receiveAll(rx, data.length, calls, null));
      assertEquals(10, calls[0]);
    }
  }

  @Test
  void withoutGsoTheRunLeavesDatagramByDatagramAndArrivesTheSame() throws Exception {
    try (LinuxUdpBind tx = LinuxUdpBind.tryOpen(0, false, false);
        LinuxUdpBind rx = LinuxUdpBind.tryOpen(0, false, false)) {
      assertFalse(tx.segmentsInOneCall());
      assertFalse(rx.coalescesReceives());
      byte[] data = run(5, 800, 10);
      tx.sendSegments(data, 0, data.length, 800, new InetSocketAddress("127.0.0.1", rx.port()));
      int[] calls = {0};
      assertArrayEquals(data, receiveAll(rx, data.length, calls, null));
      assertEquals(5, calls[0]);
    }
  }

  @Test
  void ipv4SendersOnTheDualStackSocketAreIpv4AddressesAndIpv6Works() throws Exception {
    try (LinuxUdpBind rx = LinuxUdpBind.tryOpen(0, true, true);
        ChannelUdpBind v4 = ChannelUdpBind.open(0);
        LinuxUdpBind v6 = LinuxUdpBind.tryOpen(0, true, true)) {
      byte[] hello = {1, 2, 3};
      v4.send(hello, 0, 3, new InetSocketAddress("127.0.0.1", rx.port()));
      UdpBind.Received r = new UdpBind.Received(LinuxUdpBind.RECEIVE_CAPACITY);
      assertTrue(rx.receive(r));
      assertInstanceOf(Inet4Address.class, r.source.getAddress());
      assertEquals(new InetSocketAddress("127.0.0.1", v4.port()), r.source);

      v6.send(hello, 0, 3, new InetSocketAddress(InetAddress.getByName("::1"), rx.port()));
      assertTrue(rx.receive(r));
      assertEquals(new InetSocketAddress(InetAddress.getByName("::1"), v6.port()), r.source);
      assertEquals(3, r.length);
    }
  }

  /**
   * One thread that receives and sends (the inbound thread answering a disco ping): a receive must
   * not change where the next send to an address it sent to before goes.
   */
  @Test
  void aReceiveBetweenTwoSendsToTheSameAddressDoesNotRedirectTheSecond() throws Exception {
    try (LinuxUdpBind self = LinuxUdpBind.tryOpen(0, true, true);
        ChannelUdpBind y = ChannelUdpBind.open(0);
        ChannelUdpBind x = ChannelUdpBind.open(0)) {
      InetSocketAddress toY = new InetSocketAddress("127.0.0.1", y.port());
      UdpBind.Received r = new UdpBind.Received(LinuxUdpBind.RECEIVE_CAPACITY);
      self.send(new byte[] {1}, 0, 1, toY);
      assertTrue(y.receive(r));
      x.send(new byte[] {2}, 0, 1, new InetSocketAddress("127.0.0.1", self.port()));
      assertTrue(self.receive(r));
      assertEquals(x.port(), r.source.getPort());
      self.send(new byte[] {3}, 0, 1, toY);
      assertTrue(y.receive(r));
      assertEquals(3, r.data[0], "the second send went to Y, not to the last sender");
    }
  }

  @Test
  void closeWakesABlockedReceiverAndATakenPortIsABindException() throws Exception {
    LinuxUdpBind rx = LinuxUdpBind.tryOpen(0, true, true);
    CompletableFuture<Boolean> received =
        CompletableFuture.supplyAsync(
            () -> {
              try {
                return rx.receive(new UdpBind.Received(LinuxUdpBind.RECEIVE_CAPACITY));
              } catch (Exception e) {
                throw new RuntimeException(e);
              }
            });
    assertThrows(BindException.class, () -> LinuxUdpBind.tryOpen(rx.port(), true, true));
    rx.close();
    assertFalse(received.get(10, TimeUnit.SECONDS), "a closed socket's receiver returns false");
    assertFalse(rx.receive(new UdpBind.Received(16)), "and so does every later receive");
  }
}
