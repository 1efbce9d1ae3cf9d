package dev.trellis.dataplane.tun;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.trellis.dataplane.linux.GuardedFd;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Exercises a real kernel TUN device. Needs root (CAP_NET_ADMIN), /dev/net/tun and iproute2;
 * skipped otherwise. Every test uses a fresh, randomly named interface that is deleted afterwards.
 * Addresses come from 198.18.0.0/15 and all traffic stays inside this host (TUN &lt;-&gt; local
 * stack).
 */
class TunDeviceTest {

  private static final long TIMEOUT_MS = 10_000;

  private final List<TunDevice> opened = new ArrayList<>();
  private final List<Thread> threads = new ArrayList<>();
  private String ifName;
  private int subnet; // third octet of 198.18.<subnet>.0/24

  @BeforeEach
  void requireRoot() throws Exception {
    String why = whyNotRunnable();
    if (why != null) {
      System.err.println("*** TunDeviceTest SKIPPED: needs root: " + why + " ***");
      Assumptions.assumeTrue(false, "needs root: " + why);
    }
    do {
      ifName = "trtun" + ThreadLocalRandom.current().nextInt(100_000, 1_000_000);
    } while (linkExists(ifName));
    subnet = ThreadLocalRandom.current().nextInt(1, 255);
  }

  @AfterEach
  void cleanup() throws Exception {
    for (TunDevice d : opened) {
      d.close();
    }
    for (Thread t : threads) {
      t.join(TIMEOUT_MS);
      assertFalse(t.isAlive(), "helper thread " + t.getName() + " did not finish");
    }
    if (ifName != null && linkExists(ifName)) {
      sh("ip", "link", "del", ifName);
    }
  }

  // ------------------------------------------------------------------------------------- tests

  @Test
  void opensWithDefaultMtuWithoutBringingLinkUp() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    assertEquals(ifName, dev.name());
    assertEquals(1420, dev.mtu());
    String link = sh("ip", "-o", "link", "show", ifName).checkOk().out;
    assertTrue(link.contains(" mtu 1420 "), link);
    assertTrue(
        link.contains("POINTOPOINT") && link.contains("NOARP"), "not a TUN-like link: " + link);
    String flags = link.substring(link.indexOf('<') + 1, link.indexOf('>'));
    assertFalse(
        Arrays.asList(flags.split(",")).contains("UP"), "link must not be brought up: " + link);
    String details = sh("ip", "-d", "link", "show", ifName).checkOk().out;
    assertTrue(details.contains("tun type tun"), details);
    assertTrue(details.contains("pi off"), "IFF_NO_PI expected: " + details);
  }

  @Test
  void setsCustomMtu() throws Exception {
    TunDevice dev = open(ifName, 1280);
    assertEquals(1280, dev.mtu());
    String link = sh("ip", "-o", "link", "show", ifName).checkOk().out;
    assertTrue(link.contains(" mtu 1280 "), link);
  }

  @Test
  void emptyNameLetsKernelChoose() throws Exception {
    TunDevice dev = open("", 1400);
    String kernelName = dev.name();
    try {
      assertTrue(kernelName.startsWith("tun"), kernelName);
      assertTrue(sh("ip", "-o", "link", "show", kernelName).checkOk().out.contains(" mtu 1400 "));
    } finally {
      dev.close();
    }
    awaitCondition(
        () -> !linkExists(kernelName), "kernel-named interface " + kernelName + " to vanish");
  }

  @Test
  void echoRequestWrittenToTunIsAnsweredByKernel() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    byte[] local = {(byte) 198, 18, (byte) subnet, 1};
    byte[] peer = {(byte) 198, 18, (byte) subnet, 2};
    sh("ip", "addr", "add", "198.18." + subnet + ".1/24", "dev", ifName).checkOk();
    sh("ip", "link", "set", ifName, "up").checkOk();

    int id = ThreadLocalRandom.current().nextInt(1, 0xffff);
    ByteBuffer rx = ByteBuffer.allocateDirect(2048);
    for (int seq = 1; seq <= 4; seq++) {
      byte[] payload = new byte[40 + seq];
      ThreadLocalRandom.current().nextBytes(payload);
      byte[] request = icmpEcho(peer, local, 8, id, seq, payload);
      // alternate direct and heap buffers; heap buffers go through a bounce buffer
      ByteBuffer tx =
          (seq % 2 == 1)
              ? ByteBuffer.allocateDirect(request.length)
              : ByteBuffer.allocate(request.length);
      tx.put(request).flip();
      assertTrue(dev.write(tx), "write returned false");
      assertEquals(request.length, tx.position(), "write must consume the packet");

      final int wantSeq = seq;
      byte[] reply = readMatching(dev, rx, p -> isEchoReply(p, local, peer, id, wantSeq));
      assertEquals(0, checksum(reply, 0, 20), "bad IPv4 header checksum in reply");
      int ihl = (reply[0] & 0x0f) * 4;
      assertEquals(0, checksum(reply, ihl, reply.length - ihl), "bad ICMP checksum in reply");
      assertEquals(0, reply[ihl + 1], "ICMP code");
      assertArrayEquals(payload, Arrays.copyOfRange(reply, ihl + 8, reply.length), "echo payload");
    }
  }

  @Test
  void readIntoHeapBufferAdvancesPosition() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    byte[] local = {(byte) 198, 18, (byte) subnet, 1};
    byte[] peer = {(byte) 198, 18, (byte) subnet, 2};
    sh("ip", "addr", "add", "198.18." + subnet + ".1/24", "dev", ifName).checkOk();
    sh("ip", "link", "set", ifName, "up").checkOk();
    byte[] payload = "trellis".getBytes(StandardCharsets.US_ASCII);
    byte[] request = icmpEcho(peer, local, 8, 4242, 7, payload);
    assertTrue(dev.write(ByteBuffer.allocateDirect(request.length).put(request).flip()));

    ByteBuffer heap = ByteBuffer.allocate(2000);
    heap.position(10); // data must land at the position, not at 0
    byte[] reply = readMatching(dev, heap, p -> isEchoReply(p, local, peer, 4242, 7));
    assertEquals(request.length, reply.length);
  }

  @Test
  void closeWakesBlockedReader() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU); // link down: no traffic arrives
    ByteBuffer buf = ByteBuffer.allocateDirect(2048);
    CompletableFuture<Integer> result = new CompletableFuture<>();
    Thread reader =
        startThread(
            "tun-reader",
            () -> {
              try {
                result.complete(dev.read(buf));
              } catch (Throwable t) {
                result.completeExceptionally(t);
              }
            });
    awaitBlockedInPoll(reader, result);

    long t0 = System.nanoTime();
    dev.close();
    int n = result.get(5, TimeUnit.SECONDS);
    long wakeMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
    assertEquals(-1, n, "read after close");
    assertTrue(wakeMs < 2000, "reader took " + wakeMs + " ms to wake");
    reader.join(TIMEOUT_MS);
    assertFalse(reader.isAlive());
    assertEquals(0, buf.position(), "nothing must be read");
    awaitCondition(() -> !linkExists(ifName), "interface to disappear after close");
  }

  @Test
  void deletingInterfaceEndsBlockedRead() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    CompletableFuture<Integer> result = new CompletableFuture<>();
    Thread reader =
        startThread(
            "tun-reader",
            () -> {
              try {
                result.complete(dev.read(ByteBuffer.allocateDirect(2048)));
              } catch (Throwable t) {
                result.completeExceptionally(t);
              }
            });
    awaitBlockedInPoll(reader, result);

    sh("ip", "link", "del", ifName).checkOk();
    // The kernel detaches the fd and wakes poll(); read(2) then fails with EBADFD.
    assertEquals(-1, result.get(5, TimeUnit.SECONDS), "read after ip link del");
    assertFalse(
        dev.write(
            ByteBuffer.allocateDirect(28)
                .put(
                    icmpEcho(
                        new byte[] {(byte) 198, 18, 0, 2},
                        new byte[] {(byte) 198, 18, 0, 1},
                        8,
                        1,
                        1,
                        new byte[0]))
                .flip()),
        "write after ip link del must report the device gone");
    assertEquals(-1, dev.read(ByteBuffer.allocateDirect(2048)), "subsequent read must not block");
    dev.close(); // still fine
    assertFalse(linkExists(ifName));
  }

  @Test
  void tooLongNameGivesClearError() {
    String longName = "trtun0123456789a"; // 16 chars
    IOException e = assertThrows(IOException.class, () -> open(longName, TunDevice.DEFAULT_MTU));
    assertTrue(
        e.getMessage().contains("too long")
            && e.getMessage().contains(longName)
            && e.getMessage().contains("15"),
        e.getMessage());
    assertFalse(linkExists(longName.substring(0, 15)), "nothing must be created");
  }

  @Test
  void invalidNameReportsErrno() {
    IOException e = assertThrows(IOException.class, () -> open("tr/bad", TunDevice.DEFAULT_MTU));
    assertTrue(e.getMessage().contains("EINVAL (22)"), e.getMessage());
  }

  @Test
  void secondOpenOfSameNameIsBusy() throws Exception {
    open(ifName, TunDevice.DEFAULT_MTU);
    IOException e = assertThrows(IOException.class, () -> open(ifName, TunDevice.DEFAULT_MTU));
    assertTrue(
        e.getMessage().contains("EBUSY (16)") && e.getMessage().contains(ifName), e.getMessage());
  }

  @Test
  void outOfRangeMtuFailsAndCleansUp() throws Exception {
    IOException e = assertThrows(IOException.class, () -> open(ifName, 20));
    assertTrue(
        e.getMessage().contains("SIOCSIFMTU") && e.getMessage().contains("EINVAL"), e.getMessage());
    awaitCondition(() -> !linkExists(ifName), "half-opened interface to be removed");
  }

  @Test
  void interfaceDisappearsAfterCloseAndCloseIsIdempotent() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    assertTrue(linkExists(ifName));
    dev.close();
    awaitCondition(() -> !linkExists(ifName), "interface to disappear after close");
    dev.close();
    assertEquals(-1, dev.read(ByteBuffer.allocateDirect(2048)));
    assertFalse(
        dev.write(
            ByteBuffer.allocateDirect(28)
                .put(
                    icmpEcho(
                        new byte[] {(byte) 198, 18, 0, 2},
                        new byte[] {(byte) 198, 18, 0, 1},
                        8,
                        1,
                        1,
                        new byte[0]))
                .flip()));
  }

  @Test
  void writeToDownInterfaceReturnsFalse() throws Exception {
    // Kernel behaviour: write(2) on a TUN whose link is administratively down fails with EIO.
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    ByteBuffer pkt =
        ByteBuffer.allocateDirect(28)
            .put(
                icmpEcho(
                    new byte[] {(byte) 198, 18, 0, 2},
                    new byte[] {(byte) 198, 18, 0, 1},
                    8,
                    1,
                    1,
                    new byte[0]))
            .flip();
    assertFalse(dev.write(pkt));
    assertEquals(0, pkt.position(), "position must not move when nothing was written");
  }

  @Test
  void writingNonIpDataThrows() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    sh("ip", "link", "set", ifName, "up").checkOk();
    ByteBuffer junk = ByteBuffer.allocateDirect(4); // version nibble 0: neither IPv4 nor IPv6
    IOException e = assertThrows(IOException.class, () -> dev.write(junk));
    assertTrue(e.getMessage().contains("EINVAL"), e.getMessage());
  }

  @Test
  void readOnlyDirectBufferCanBeWrittenButNotReadInto() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    byte[] local = {(byte) 198, 18, (byte) subnet, 1};
    byte[] peer = {(byte) 198, 18, (byte) subnet, 2};
    sh("ip", "addr", "add", "198.18." + subnet + ".1/24", "dev", ifName).checkOk();
    sh("ip", "link", "set", ifName, "up").checkOk();
    byte[] request = icmpEcho(peer, local, 8, 777, 3, new byte[16]);
    ByteBuffer ro =
        ByteBuffer.allocateDirect(request.length).put(request).flip().asReadOnlyBuffer();
    assertTrue(dev.write(ro));
    assertFalse(ro.hasRemaining());
    readMatching(dev, ByteBuffer.allocateDirect(2048), p -> isEchoReply(p, local, peer, 777, 3));
    assertThrows(
        ReadOnlyBufferException.class,
        () -> dev.read(ByteBuffer.allocateDirect(2048).asReadOnlyBuffer()));
  }

  @Test
  void closeDuringConcurrentReadAndWritesStopsEveryone() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    byte[] local = {(byte) 198, 18, (byte) subnet, 1};
    byte[] peer = {(byte) 198, 18, (byte) subnet, 2};
    sh("ip", "addr", "add", "198.18." + subnet + ".1/24", "dev", ifName).checkOk();
    sh("ip", "link", "set", ifName, "up").checkOk();
    AtomicLong replies = new AtomicLong();
    List<CompletableFuture<Long>> done = new ArrayList<>();
    CompletableFuture<Long> readerDone = new CompletableFuture<>();
    done.add(readerDone);
    startThread(
        "tun-reader",
        () -> {
          try {
            ByteBuffer b = ByteBuffer.allocateDirect(2048);
            while (dev.read(b.clear()) >= 0) {
              replies.incrementAndGet();
            }
            readerDone.complete(replies.get());
          } catch (Throwable t) {
            readerDone.completeExceptionally(t);
          }
        });
    for (int w = 0; w < 3; w++) {
      CompletableFuture<Long> writerDone = new CompletableFuture<>();
      done.add(writerDone);
      byte[] req = icmpEcho(peer, local, 8, 1000 + w, 1, new byte[32]);
      startThread(
          "tun-writer-" + w,
          () -> {
            try {
              ByteBuffer b = ByteBuffer.allocateDirect(req.length).put(req).flip();
              long n = 0;
              while (dev.write(b.rewind())) {
                n++;
              }
              writerDone.complete(n);
            } catch (Throwable t) {
              writerDone.completeExceptionally(t);
            }
          });
    }
    awaitCondition(() -> replies.get() > 1000, "echo replies to flow");
    dev.close();
    // Every thread returns (none hangs or fails) once the device is closed. A writer that a busy
    // machine started late may have written nothing yet, so only the total must be positive.
    long written = 0;
    for (CompletableFuture<Long> f : done.subList(1, done.size())) {
      written += f.get(5, TimeUnit.SECONDS);
    }
    assertTrue(written > 0, "the writers wrote nothing");
    assertTrue(readerDone.get(5, TimeUnit.SECONDS) > 1000);
    awaitCondition(() -> !linkExists(ifName), "interface to disappear after close");
  }

  @Test
  void writeRateSanity() throws Exception {
    TunDevice dev = open(ifName, TunDevice.DEFAULT_MTU);
    sh("ip", "link", "set", ifName, "up").checkOk();
    // IPv4 packet with a deliberately wrong header checksum and TTL 1: the kernel drops it in
    // ip_rcv before routing, so this only measures the write(2) path.
    byte[] p =
        icmpEcho(
            new byte[] {(byte) 198, 18, (byte) subnet, 2},
            new byte[] {(byte) 198, 18, (byte) subnet, 3},
            8,
            1,
            1,
            new byte[64]);
    p[8] = 1;
    p[10] ^= (byte) 0x5a;
    ByteBuffer pkt = ByteBuffer.allocateDirect(p.length).put(p).flip();
    int n = 0;
    long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(500);
    while (System.nanoTime() < end) { // warm-up
      pkt.rewind();
      assertTrue(dev.write(pkt));
      n++;
    }
    n = 0;
    long t0 = System.nanoTime();
    end = t0 + TimeUnit.MILLISECONDS.toNanos(1500);
    long now;
    do {
      for (int i = 0; i < 1000; i++) {
        pkt.rewind();
        if (!dev.write(pkt)) {
          fail("write returned false");
        }
      }
      n += 1000;
      now = System.nanoTime();
    } while (now < end);
    double perSec = n / ((now - t0) / 1e9);
    System.err.printf(
        "TunDeviceTest: %d writes of %d bytes in %.2f s = %.0f writes/s (single thread)%n",
        n, p.length, (now - t0) / 1e9, perSec);
    assertTrue(n > 0);
  }

  /**
   * With offloads the kernel hands over a TCP burst as one large packet; the device splits it into
   * segments with complete checksums, and plain writes still work (the SYN-ACK we answer with).
   */
  @Test
  void withOffloadsAKernelTcpBurstIsSplitIntoSegmentsWithValidChecksums() throws Exception {
    TunDevice dev = TunDevice.open(ifName, TunDevice.DEFAULT_MTU, true);
    opened.add(dev);
    assertTrue(dev.offloads(), "IFF_VNET_HDR + TUNSETOFFLOAD refused on this kernel");
    assertEquals(0x06, dev.offloadFlags() & 0x06, "TSO4 and TSO6 taken");
    byte[] local = {(byte) 198, 18, (byte) subnet, 1};
    byte[] peer = {(byte) 198, 18, (byte) subnet, 2};
    sh("ip", "addr", "add", "198.18." + subnet + ".1/24", "dev", ifName).checkOk();
    sh("ip", "link", "set", ifName, "up").checkOk();

    java.util.concurrent.BlockingQueue<byte[]> packets =
        new java.util.concurrent.LinkedBlockingQueue<>();
    java.util.concurrent.atomic.AtomicBoolean sawSplit =
        new java.util.concurrent.atomic.AtomicBoolean();
    startThread(
        "tun-offload-reader",
        () -> {
          byte[] buf = new byte[65535];
          try {
            for (int n; (n = dev.read(buf)) >= 0; ) {
              if (dev.hasBufferedReads()) {
                sawSplit.set(true);
              }
              packets.add(Arrays.copyOf(buf, n));
            }
          } catch (IOException e) {
            packets.add(new byte[0]);
          }
        });
    int port = 20000 + subnet;
    java.net.Socket client = new java.net.Socket();
    CompletableFuture<Void> connected =
        CompletableFuture.runAsync(
            () -> {
              try {
                client.connect(
                    new InetSocketAddress(java.net.InetAddress.getByAddress(peer), port), 10_000);
              } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            });
    try {
      byte[] syn = nextTcp(packets, local, peer, port);
      assertEquals(0, tcpChecksum(syn), "the SYN's checksum (NEEDS_CSUM completed)");
      int ihl = (syn[0] & 0x0f) * 4;
      int clientPort = u16(syn, ihl);
      int clientSeq = (int) u32(syn, ihl + 4);
      int serverSeq = 0x10000000;
      assertTrue(
          dev.write(
              ByteBuffer.wrap(synAck(peer, local, port, clientPort, serverSeq, clientSeq + 1))));
      connected.get(TIMEOUT_MS, TimeUnit.MILLISECONDS);

      byte[] data = new byte[60_000];
      ThreadLocalRandom.current().nextBytes(data);
      client.getOutputStream().write(data);
      // Without our ACKs the kernel sends its initial window (10 segments) and waits.
      java.util.TreeMap<Long, byte[]> received = new java.util.TreeMap<>();
      long deadline = System.currentTimeMillis() + TIMEOUT_MS;
      while (received.size() < 10 && System.currentTimeMillis() < deadline) {
        byte[] seg = nextTcp(packets, local, peer, port);
        int h = (seg[0] & 0x0f) * 4;
        int tcpHeader = ((seg[h + 12] & 0xf0) >>> 2);
        int payload = seg.length - h - tcpHeader;
        if (payload == 0) {
          continue;
        }
        assertEquals(seg.length, u16(seg, 2), "IPv4 total length of a segment");
        assertEquals(0, checksum(seg, 0, h), "IPv4 header checksum of a segment");
        assertEquals(0, tcpChecksum(seg), "TCP checksum of a segment");
        assertTrue(payload <= 1380, "segments no larger than the MSS: " + payload);
        long offset = (u32(seg, h + 4) - (clientSeq + 1)) & 0xffffffffL;
        received.put(offset, Arrays.copyOfRange(seg, h + tcpHeader, seg.length));
      }
      long expect = 0;
      for (var e : received.entrySet()) {
        assertEquals(expect, e.getKey(), "segments follow each other");
        assertArrayEquals(
            Arrays.copyOfRange(data, (int) expect, (int) expect + e.getValue().length),
            e.getValue());
        expect += e.getValue().length;
      }
      assertTrue(received.size() >= 10, "the initial window arrived: " + received.size());
      assertTrue(sawSplit.get(), "the burst came as one large read, split by the device");
    } finally {
      client.close();
      dev.close();
    }
  }

  /** The next TCP packet from {@code local} to {@code peer:port}, within the timeout. */
  private static byte[] nextTcp(
      java.util.concurrent.BlockingQueue<byte[]> q, byte[] local, byte[] peer, int port)
      throws Exception {
    long deadline = System.currentTimeMillis() + TIMEOUT_MS;
    for (; ; ) {
      byte[] p = q.poll(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS);
      if (p == null) {
        throw new AssertionError("no TCP packet to " + port + " within " + TIMEOUT_MS + " ms");
      }
      if (p.length >= 40
          && (p[0] & 0xf0) == 0x40
          && p[9] == 6
          && Arrays.equals(p, 12, 16, local, 0, 4)
          && Arrays.equals(p, 16, 20, peer, 0, 4)
          && u16(p, (p[0] & 0x0f) * 4 + 2) == port) {
        return p;
      }
    }
  }

  private static long u32(byte[] b, int off) {
    return ((long) u16(b, off) << 16) | u16(b, off + 2);
  }

  /** 0 when the TCP checksum of the IPv4 packet is right. */
  private static int tcpChecksum(byte[] p) {
    int ihl = (p[0] & 0x0f) * 4;
    int l4 = p.length - ihl;
    byte[] pseudo = new byte[12 + l4];
    System.arraycopy(p, 12, pseudo, 0, 8);
    pseudo[9] = 6;
    pseudo[10] = (byte) (l4 >>> 8);
    pseudo[11] = (byte) l4;
    System.arraycopy(p, ihl, pseudo, 12, l4);
    return checksum(pseudo, 0, pseudo.length);
  }

  /** A SYN-ACK with MSS 1380 and valid checksums. */
  private static byte[] synAck(byte[] src, byte[] dst, int sport, int dport, int seq, int ack) {
    byte[] p = new byte[20 + 24];
    p[0] = 0x45;
    p[3] = (byte) p.length;
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    System.arraycopy(src, 0, p, 12, 4);
    System.arraycopy(dst, 0, p, 16, 4);
    int c = checksum(p, 0, 20);
    p[10] = (byte) (c >>> 8);
    p[11] = (byte) c;
    int t = 20;
    p[t] = (byte) (sport >>> 8);
    p[t + 1] = (byte) sport;
    p[t + 2] = (byte) (dport >>> 8);
    p[t + 3] = (byte) dport;
    for (int i = 0; i < 4; i++) {
      p[t + 4 + i] = (byte) (seq >>> (24 - 8 * i));
      p[t + 8 + i] = (byte) (ack >>> (24 - 8 * i));
    }
    p[t + 12] = 0x60; // 24-byte header
    p[t + 13] = 0x12; // SYN ACK
    p[t + 14] = (byte) 0xff;
    p[t + 15] = (byte) 0xff;
    p[t + 20] = 2; // MSS
    p[t + 21] = 4;
    p[t + 22] = (byte) (1380 >>> 8);
    p[t + 23] = (byte) 1380;
    int tc = tcpChecksum(p);
    p[t + 16] = (byte) (tc >>> 8);
    p[t + 17] = (byte) tc;
    return p;
  }

  // ----------------------------------------------------------------------------------- helpers

  private TunDevice open(String name, int mtu) throws IOException {
    TunDevice d = TunDevice.open(name, mtu);
    opened.add(d);
    return d;
  }

  private Thread startThread(String name, Runnable r) {
    Thread t = new Thread(r, name);
    t.setDaemon(true);
    threads.add(t);
    t.start();
    return t;
  }

  /**
   * Waits until {@code reader} is parked inside TunDevice's poll() wait (or has already finished).
   */
  private static void awaitBlockedInPoll(Thread reader, CompletableFuture<?> result)
      throws Exception {
    awaitCondition(
        () -> {
          if (result.isDone()) {
            return true;
          }
          for (StackTraceElement e : reader.getStackTrace()) {
            if (e.getClassName().equals(GuardedFd.class.getName())
                && e.getMethodName().equals("await")) {
              return true;
            }
          }
          return false;
        },
        "reader to block in poll()");
    assertFalse(result.isDone(), () -> "read returned early: " + result.getNow(null));
  }

  interface PacketFilter {
    boolean test(byte[] packet);
  }

  /**
   * Reads packets (ignoring e.g. IPv6 router solicitations) until one matches; bounded by
   * TIMEOUT_MS.
   */
  private byte[] readMatching(TunDevice dev, ByteBuffer buf, PacketFilter filter) throws Exception {
    CompletableFuture<byte[]> found = new CompletableFuture<>();
    Thread reader =
        startThread(
            "tun-matcher",
            () -> {
              try {
                int start = buf.position();
                while (true) {
                  buf.clear().position(start);
                  int n = dev.read(buf);
                  if (n < 0) {
                    found.completeExceptionally(new AssertionError("device closed while waiting"));
                    return;
                  }
                  assertEquals(
                      start + n, buf.position(), "read must advance position by the length");
                  byte[] p = new byte[n];
                  buf.get(start, p);
                  if (filter.test(p)) {
                    found.complete(p);
                    return;
                  }
                }
              } catch (Throwable t) {
                found.completeExceptionally(t);
              }
            });
    try {
      return found.get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      dev.close(); // unblocks the reader
      throw new AssertionError(
          "no matching packet read from " + dev.name() + " within " + TIMEOUT_MS + " ms");
    } catch (ExecutionException e) {
      throw new AssertionError("reader failed", e.getCause());
    } finally {
      reader.join(TIMEOUT_MS);
    }
  }

  private static boolean isEchoReply(byte[] p, byte[] from, byte[] to, int id, int seq) {
    if (p.length < 28 || (p[0] & 0xf0) != 0x40 || p[9] != 1) {
      return false;
    }
    int ihl = (p[0] & 0x0f) * 4;
    return Arrays.equals(p, 12, 16, from, 0, 4)
        && Arrays.equals(p, 16, 20, to, 0, 4)
        && p[ihl] == 0
        && u16(p, ihl + 4) == id
        && u16(p, ihl + 6) == seq
        && u16(p, 2) == p.length;
  }

  /** IPv4 + ICMP echo packet with valid checksums. */
  static byte[] icmpEcho(byte[] src, byte[] dst, int type, int id, int seq, byte[] payload) {
    int len = 20 + 8 + payload.length;
    byte[] p = new byte[len];
    p[0] = 0x45;
    put16(p, 2, len);
    put16(p, 4, 0x1234);
    put16(p, 6, 0x4000); // DF
    p[8] = 64;
    p[9] = 1; // ICMP
    System.arraycopy(src, 0, p, 12, 4);
    System.arraycopy(dst, 0, p, 16, 4);
    put16(p, 10, checksum(p, 0, 20));
    p[20] = (byte) type;
    put16(p, 24, id);
    put16(p, 26, seq);
    System.arraycopy(payload, 0, p, 28, payload.length);
    put16(p, 22, checksum(p, 20, len - 20));
    return p;
  }

  /**
   * RFC 1071 Internet checksum; returns 0 when verifying a region that includes a correct checksum.
   */
  static int checksum(byte[] b, int off, int len) {
    long sum = 0;
    int i = 0;
    for (; i + 1 < len; i += 2) {
      sum += ((b[off + i] & 0xff) << 8) | (b[off + i + 1] & 0xff);
    }
    if (i < len) {
      sum += (b[off + i] & 0xff) << 8;
    }
    while ((sum >> 16) != 0) {
      sum = (sum & 0xffff) + (sum >> 16);
    }
    return (int) (~sum & 0xffff);
  }

  private static int u16(byte[] b, int off) {
    return ((b[off] & 0xff) << 8) | (b[off + 1] & 0xff);
  }

  private static void put16(byte[] b, int off, int v) {
    b[off] = (byte) (v >>> 8);
    b[off + 1] = (byte) v;
  }

  private static void awaitCondition(BooleanSupplier cond, String what)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(TIMEOUT_MS);
    while (!cond.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        fail("timed out after " + TIMEOUT_MS + " ms waiting for " + what);
      }
      Thread.sleep(5);
    }
  }

  private static boolean linkExists(String name) {
    try {
      return sh("ip", "link", "show", "dev", name).rc == 0;
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  record Result(int rc, String out, String cmd) {
    Result checkOk() {
      assertEquals(0, rc, () -> "command failed: " + cmd + "\n" + out);
      assertNotNull(out);
      return this;
    }
  }

  private static Result sh(String... cmd) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    if (!p.waitFor(TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
      p.destroyForcibly();
      throw new IOException("timed out: " + String.join(" ", cmd));
    }
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    return new Result(p.exitValue(), out, String.join(" ", cmd));
  }

  /** Returns null if the test can run, otherwise the reason it cannot. */
  private static String whyNotRunnable() {
    try {
      String uid =
          Files.readAllLines(Path.of("/proc/self/status")).stream()
              .filter(l -> l.startsWith("Uid:"))
              .findFirst()
              .orElse("");
      String[] f = uid.trim().split("\\s+");
      if (f.length < 3 || !f[2].equals("0")) {
        return "effective uid is not 0 (" + uid.trim() + ")";
      }
    } catch (IOException e) {
      return "cannot read /proc/self/status: " + e;
    }
    if (!Files.exists(Path.of("/dev/net/tun"))) {
      return "/dev/net/tun does not exist";
    }
    try {
      if (sh("ip", "-V").rc != 0) {
        return "iproute2 'ip' not usable";
      }
    } catch (Exception e) {
      return "iproute2 'ip' not available: " + e;
    }
    return null;
  }
}
