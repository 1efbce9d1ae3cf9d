package dev.trellis.dataplane.offload;

import static dev.trellis.dataplane.offload.Segments.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class GroCoalescerTest {
  private final GroCoalescer coalescer = new GroCoalescer();
  private final List<byte[]> written = new ArrayList<>();
  private final byte[] batch = new byte[256 * 1024];
  private int batchEnd;

  private void add(byte[] packet) {
    System.arraycopy(packet, 0, batch, batchEnd, packet.length);
    coalescer.add(batch, batchEnd, packet.length);
    batchEnd += packet.length;
  }

  private List<byte[]> flush() throws Exception {
    coalescer.flush(
        b -> {
          byte[] copy = new byte[b.remaining()];
          b.get(copy);
          written.add(copy);
          return true;
        });
    batchEnd = 0;
    return written;
  }

  /** A flow's consecutive full segments, ids counting up as a sender's would. */
  private static List<byte[]> flow(Tcp template, int count, int size, int lastSize, int lastFlags) {
    List<byte[]> out = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      int n = i == count - 1 ? lastSize : size;
      Tcp t = new Tcp();
      t.v6 = template.v6;
      t.ttl = template.ttl;
      t.sport = template.sport;
      t.tcpOptions = template.tcpOptions;
      t.ipOptions = template.ipOptions;
      out.add(
          t.payload(payload(n, i))
              .seq(template.seq + i * size)
              .id(template.id + i)
              .flags(i == count - 1 ? lastFlags : ACK)
              .build());
    }
    return out;
  }

  private static void assertPlain(byte[] written, byte[] original) {
    assertEquals(VirtioNetHeader.GSO_NONE, VirtioNetHeader.gsoType(written, 0));
    assertEquals(0, VirtioNetHeader.flags(written, 0));
    assertArrayEquals(
        original, Arrays.copyOfRange(written, VirtioNetHeader.LENGTH, written.length));
  }

  /** Splits a joined packet as the kernel's TSO would and compares with what was joined. */
  private static void assertSplitsBackInto(byte[] joined, List<byte[]> originals) {
    GsoSplitter splitter = new GsoSplitter();
    assertEquals(originals.size(), splitter.split(joined, 0, joined.length));
    for (int i = 0; i < originals.size(); i++) {
      byte[] p =
          Arrays.copyOfRange(
              splitter.buffer(), splitter.offset(i), splitter.offset(i) + splitter.length(i));
      assertArrayEquals(originals.get(i), p, "segment " + i + " after the round trip");
    }
  }

  @Test
  void consecutiveSegmentsOfOneFlowBecomeOneLargePacket() throws Exception {
    for (boolean v6 : new boolean[] {false, true}) {
      written.clear();
      Tcp t = new Tcp();
      t.v6 = v6;
      t.tcpOptions = new byte[] {1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6};
      List<byte[]> segments = flow(t, 20, 1368, 500, ACK | PSH);
      segments.forEach(this::add);
      List<byte[]> out = flush();
      assertEquals(1, out.size(), v6 ? "v6" : "v4");
      byte[] j = out.get(0);
      int ipHeader = v6 ? 40 : 20;
      int headers = ipHeader + 32;
      assertEquals(VirtioNetHeader.F_NEEDS_CSUM, VirtioNetHeader.flags(j, 0));
      assertEquals(
          v6 ? VirtioNetHeader.GSO_TCPV6 : VirtioNetHeader.GSO_TCPV4,
          VirtioNetHeader.gsoType(j, 0));
      assertEquals(1368, VirtioNetHeader.gsoSize(j, 0));
      assertEquals(headers, VirtioNetHeader.hdrLen(j, 0));
      assertEquals(ipHeader, VirtioNetHeader.csumStart(j, 0));
      assertEquals(16, VirtioNetHeader.csumOffset(j, 0));
      int length = j.length - VirtioNetHeader.LENGTH;
      assertEquals(headers + 19 * 1368 + 500, length);
      int l4 = length - ipHeader;
      assertEquals(
          pseudoFolded(j, VirtioNetHeader.LENGTH, 6, l4),
          get16(j, VirtioNetHeader.LENGTH + ipHeader + 16),
          "the TCP checksum field holds the pseudo-header sum, as NEEDS_CSUM says");
      if (!v6) {
        assertEquals(0xffff, sum(j, VirtioNetHeader.LENGTH, 20, 0), "IPv4 header checksum");
      }
      assertSplitsBackInto(j, segments);
    }
  }

  @Test
  void aShortSegmentOrPshEndsThePacketAndTheRestStartsAnother() throws Exception {
    Tcp t = new Tcp();
    List<byte[]> first = flow(t, 3, 1000, 600, ACK); // short last segment
    Tcp t2 = new Tcp().seq(t.seq + 2600);
    List<byte[]> second = flow(t2, 3, 1000, 1000, ACK | PSH); // PSH last
    Tcp t3 = new Tcp().seq(t.seq + 5600);
    List<byte[]> third = flow(t3, 2, 1000, 1000, ACK);
    first.forEach(this::add);
    second.forEach(this::add);
    third.forEach(this::add);
    List<byte[]> out = flush();
    assertEquals(3, out.size());
    assertSplitsBackInto(out.get(0), first);
    assertSplitsBackInto(out.get(1), second);
    assertSplitsBackInto(out.get(2), third);
  }

  @Test
  void pshInTheMiddleIsNotCarriedAcrossIntoLaterSegments() throws Exception {
    List<byte[]> segs = flow(new Tcp(), 4, 1000, 1000, ACK);
    Tcp p = new Tcp().payload(payload(1000, 1)).seq(2000).id(101).flags(ACK | PSH);
    segs.set(1, p.build());
    segs.forEach(this::add);
    List<byte[]> out = flush();
    assertEquals(2, out.size());
    assertSplitsBackInto(out.get(0), segs.subList(0, 2));
    assertSplitsBackInto(out.get(1), segs.subList(2, 4));
  }

  @Test
  void differingTtlOrAGapInSequenceKeepsSegmentsApart() throws Exception {
    List<byte[]> segs = flow(new Tcp(), 3, 1000, 1000, ACK);
    segs.set(1, new Tcp().payload(payload(1000, 1)).seq(2000).id(101).ttl(63).build());
    segs.forEach(this::add);
    List<byte[]> out = flush();
    assertEquals(3, out.size(), "a different TTL joins neither neighbour");
    for (int i = 0; i < 3; i++) {
      assertPlain(out.get(i), segs.get(i));
    }

    written.clear();
    List<byte[]> gap = flow(new Tcp(), 2, 1000, 1000, ACK);
    gap.add(new Tcp().payload(payload(1000, 9)).seq(1000 + 3000).id(102).build()); // skips one
    gap.forEach(this::add);
    out = flush();
    assertEquals(2, out.size());
    assertSplitsBackInto(out.get(0), gap.subList(0, 2));
    assertPlain(out.get(1), gap.get(2));
  }

  @Test
  void ipv4OptionsFragmentsUdpAndControlSegmentsAreWrittenAsTheyCame() throws Exception {
    Tcp withOptions = new Tcp().payload(payload(1000, 1));
    withOptions.ipOptions = new byte[] {1, 1, 1, 0};
    byte[] o1 = withOptions.build();
    byte[] o2 = withOptions.seq(2000).payload(payload(1000, 2)).build();
    byte[] syn = new Tcp().flags(SYN | ACK).seq(5000).build();
    byte[] empty = new Tcp().seq(9000).build(); // a pure ACK
    byte[] datagram = udp(false, 7, payload(900, 3));
    byte[] fragment = new Tcp().payload(payload(1000, 4)).seq(3000).build();
    fragment[6] = 0x20; // MF
    List<byte[]> all = List.of(o1, o2, syn, empty, datagram, fragment);
    all.forEach(this::add);
    List<byte[]> out = flush();
    assertEquals(all.size(), out.size());
    for (int i = 0; i < all.size(); i++) {
      assertPlain(out.get(i), all.get(i));
    }
  }

  @Test
  void interleavedFlowsAreJoinedEachInItsOwnOrder() throws Exception {
    Tcp a = new Tcp();
    Tcp b = new Tcp().sport(40001).seq(500_000);
    List<byte[]> fa = flow(a, 5, 1200, 1200, ACK);
    List<byte[]> fb = flow(b, 5, 1200, 1200, ACK);
    for (int i = 0; i < 5; i++) {
      add(fa.get(i));
      add(fb.get(i));
    }
    List<byte[]> out = flush();
    assertEquals(2, out.size());
    assertSplitsBackInto(out.get(0), fa);
    assertSplitsBackInto(out.get(1), fb);
  }

  @Test
  void aJoinedPacketNeverPassesTheLargestIpPacket() throws Exception {
    List<byte[]> segs = flow(new Tcp(), 60, 1400, 1400, ACK); // 84,000 bytes of payload
    segs.forEach(this::add);
    List<byte[]> out = flush();
    assertEquals(2, out.size());
    int firstCount = (65535 - 40) / 1400;
    for (byte[] j : out) {
      assertEquals(true, j.length - VirtioNetHeader.LENGTH <= 65535);
    }
    assertSplitsBackInto(out.get(0), segs.subList(0, firstCount));
    assertSplitsBackInto(out.get(1), segs.subList(firstCount, 60));
  }

  @Test
  void aFlushWritesEverythingAndTheNextBatchStartsEmpty() throws Exception {
    add(new Tcp().payload(payload(1000, 1)).build());
    assertEquals(1, flush().size());
    written.clear();
    assertEquals(0, flush().size());
    ByteBuffer unused = ByteBuffer.allocate(0);
    assertEquals(0, unused.remaining());
  }
}
