package dev.trellis.dataplane.offload;

import static dev.trellis.dataplane.offload.Segments.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class GsoSplitterTest {
  private final GsoSplitter splitter = new GsoSplitter();

  /** A large TCP packet as a TUN with TSO hands it over: pseudo sum in the checksum field. */
  private static byte[] tso(Tcp tcp, int gsoSize) {
    byte[] p = tcp.build();
    int ipHeader = ipHeaderLength(p, 0);
    int headers = ipHeader + ((p[ipHeader + 12] & 0xf0) >>> 2);
    put16(p, ipHeader + 16, pseudoFolded(p, 0, 6, p.length - ipHeader));
    return withHeader(
        p,
        VirtioNetHeader.F_NEEDS_CSUM,
        tcp.v6 ? VirtioNetHeader.GSO_TCPV6 : VirtioNetHeader.GSO_TCPV4,
        headers,
        gsoSize,
        ipHeader,
        16);
  }

  private byte[] packet(int i) {
    return Arrays.copyOfRange(
        splitter.buffer(), splitter.offset(i), splitter.offset(i) + splitter.length(i));
  }

  private byte[] payloadOfAll(int headers) {
    ByteArrayOutputStream all = new ByteArrayOutputStream();
    for (int i = 0; i < splitter.count(); i++) {
      byte[] p = packet(i);
      all.write(p, headers, p.length - headers);
    }
    return all.toByteArray();
  }

  @Test
  void aTsoPacketBecomesFullSegmentsAndAShortLastOneWithFlagsOnlyWhereTheyBelong() {
    byte[] data = payload(10_000, 1);
    byte[] in = tso(new Tcp().payload(data).flags(ACK | PSH | FIN | CWR).seq(-100).id(65534), 1380);
    assertEquals(8, splitter.split(in, 0, in.length)); // 7 x 1380 + 340
    for (int i = 0; i < 8; i++) {
      byte[] p = packet(i);
      assertValid(p, 0, p.length);
      assertEquals(i < 7 ? 40 + 1380 : 40 + 340, p.length, "segment " + i);
      assertEquals(-100 + i * 1380, get32(p, 24), "sequence number of segment " + i);
      assertEquals((65534 + i) & 0xffff, get16(p, 4), "IPv4 id counts up and wraps");
      int flags = p[33] & 0xff;
      assertEquals(i == 7, (flags & (PSH | FIN)) == (PSH | FIN), "PSH+FIN only last: " + i);
      assertEquals(i == 0, (flags & CWR) != 0, "CWR only first: " + i);
      assertEquals(ACK, flags & ACK);
    }
    assertArrayEquals(data, payloadOfAll(40));
  }

  @Test
  void ipv4OptionsAreCopiedIntoEverySegment() {
    Tcp tcp = new Tcp().payload(payload(3000, 2));
    tcp.ipOptions = new byte[] {1, 1, 1, 0}; // NOP NOP NOP EOL
    tcp.tcpOptions = new byte[] {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}; // NOP NOP timestamps
    byte[] in = tso(tcp, 1000);
    assertEquals(3, splitter.split(in, 0, in.length));
    for (int i = 0; i < 3; i++) {
      byte[] p = packet(i);
      assertValid(p, 0, p.length);
      assertEquals(0x46, p[0] & 0xff, "IHL 6 kept");
      assertArrayEquals(tcp.ipOptions, Arrays.copyOfRange(p, 20, 24));
      assertArrayEquals(tcp.tcpOptions, Arrays.copyOfRange(p, 44, 56));
    }
    assertArrayEquals(tcp.payload, payloadOfAll(24 + 32));
  }

  @Test
  void ipv6SegmentsCarryTheirOwnPayloadLength() {
    byte[] data = payload(5000, 3);
    byte[] in = tso(new Tcp().v6().payload(data).flags(ACK | PSH), 1200);
    assertEquals(5, splitter.split(in, 0, in.length));
    for (int i = 0; i < 5; i++) {
      byte[] p = packet(i);
      assertValid(p, 0, p.length);
      assertEquals((i == 4 ? 200 : 1200) + 20, get16(p, 4));
      assertEquals(i == 4, (p[53] & PSH) != 0);
    }
    assertArrayEquals(data, payloadOfAll(60));
  }

  @Test
  void payloadThatFitsOneSegmentIsOnePacketWithItsChecksumCompleted() {
    byte[] in = tso(new Tcp().payload(payload(500, 4)), 1380);
    assertEquals(1, splitter.split(in, 0, in.length));
    byte[] p = packet(0);
    assertValid(p, 0, p.length);
    assertEquals(540, p.length);
  }

  @Test
  void aPlainPacketWithNeedsCsumGetsItsChecksumAndOneWithoutIsLeftAlone() {
    byte[] p = new Tcp().payload(payload(700, 5)).build();
    byte[] partial = p.clone();
    put16(partial, 36, pseudoFolded(partial, 0, 6, p.length - 20));
    byte[] in = withHeader(partial, VirtioNetHeader.F_NEEDS_CSUM, 0, 0, 0, 20, 16);
    assertEquals(1, splitter.split(in, 0, in.length));
    assertArrayEquals(p, packet(0));

    byte[] plain = withHeader(p, 0, 0, 0, 0, 0, 0);
    assertEquals(1, splitter.split(plain, 0, plain.length));
    assertArrayEquals(p, packet(0));
  }

  @Test
  void usoBecomesDatagramsWithTheirOwnLengthAndChecksum() {
    for (boolean v6 : new boolean[] {false, true}) {
      byte[] data = payload(4000, 6);
      byte[] p = udp(v6, 9, data);
      int ipHeader = v6 ? 40 : 20;
      byte[] in =
          withHeader(
              p,
              VirtioNetHeader.F_NEEDS_CSUM,
              VirtioNetHeader.GSO_UDP_L4,
              ipHeader + 8,
              1400,
              ipHeader,
              6);
      assertEquals(3, splitter.split(in, 0, in.length), v6 ? "v6" : "v4");
      ByteArrayOutputStream all = new ByteArrayOutputStream();
      for (int i = 0; i < 3; i++) {
        byte[] d = packet(i);
        assertValid(d, 0, d.length);
        assertEquals(ipHeader + 8 + (i < 2 ? 1400 : 1200), d.length);
        all.write(d, ipHeader + 8, d.length - ipHeader - 8);
      }
      assertArrayEquals(data, all.toByteArray());
    }
  }

  @Test
  void malformedInputIsRefusedNotSplit() {
    byte[] good = tso(new Tcp().payload(payload(3000, 7)), 1000);
    byte[] zeroGso = good.clone();
    VirtioNetHeader.write(zeroGso, 0, 1, VirtioNetHeader.GSO_TCPV4, 40, 0, 20, 16);
    assertEquals(0, splitter.split(zeroGso, 0, zeroGso.length), "gso_size 0");
    assertEquals(0, splitter.split(good, 0, 10 + 30), "cut inside the TCP header");
    assertEquals(0, splitter.split(good, 0, 8), "shorter than the virtio header");

    byte[] v6 = tso(new Tcp().v6().payload(payload(3000, 8)), 1000);
    v6[10 + 6] = 0; // next header: hop-by-hop options, an extension we do not walk
    assertEquals(0, splitter.split(v6, 0, v6.length), "IPv6 extension header");

    byte[] wrongType = good.clone();
    wrongType[1] = VirtioNetHeader.GSO_TCPV6; // says v6, is v4
    assertEquals(0, splitter.split(wrongType, 0, wrongType.length));

    byte[] badCsum = withHeader(new Tcp().build(), VirtioNetHeader.F_NEEDS_CSUM, 0, 0, 0, 20, 100);
    assertEquals(0, splitter.split(badCsum, 0, badCsum.length), "checksum outside the packet");
  }
}
