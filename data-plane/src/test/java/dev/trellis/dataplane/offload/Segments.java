package dev.trellis.dataplane.offload;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;

/**
 * Hand-built TCP and UDP packets for the offload tests, with checksums computed here by a plain
 * 16-bit loop (independent of {@link Checksum}), and the checks that a packet's checksums are
 * right.
 */
final class Segments {
  static final int FIN = 0x01;
  static final int SYN = 0x02;
  static final int PSH = 0x08;
  static final int ACK = 0x10;
  static final int CWR = 0x80;

  static final byte[] SRC4 = {100, 64, 0, 1};
  static final byte[] DST4 = {100, 64, 0, 2};
  static final byte[] SRC6 = v6(1);
  static final byte[] DST6 = v6(2);

  private Segments() {}

  static byte[] v6(int last) {
    byte[] a = new byte[16];
    a[0] = (byte) 0xfd;
    a[1] = 0x7a;
    a[2] = 0x11;
    a[3] = 0x5c;
    a[4] = (byte) 0xa1;
    a[5] = (byte) 0xe0;
    a[15] = (byte) last;
    return a;
  }

  /** What a TCP segment is made of; defaults are a plain full-sized ACK. */
  static final class Tcp {
    boolean v6;
    int ttl = 64;
    int tos = 0;
    int id = 100;
    byte[] ipOptions = new byte[0];
    int sport = 40000;
    int dport = 5201;
    int seq = 1000;
    int ack = 7777;
    int flags = ACK;
    byte[] tcpOptions = new byte[0];
    byte[] payload = new byte[0];

    Tcp v6() {
      v6 = true;
      return this;
    }

    Tcp payload(byte[] p) {
      payload = p;
      return this;
    }

    Tcp seq(int s) {
      seq = s;
      return this;
    }

    Tcp flags(int f) {
      flags = f;
      return this;
    }

    Tcp ttl(int t) {
      ttl = t;
      return this;
    }

    Tcp id(int i) {
      id = i;
      return this;
    }

    Tcp sport(int p) {
      sport = p;
      return this;
    }

    byte[] build() {
      int tcpLength = 20 + tcpOptions.length;
      byte[] l4 = new byte[tcpLength + payload.length];
      put16(l4, 0, sport);
      put16(l4, 2, dport);
      put32(l4, 4, seq);
      put32(l4, 8, ack);
      l4[12] = (byte) ((tcpLength / 4) << 4);
      l4[13] = (byte) flags;
      put16(l4, 14, 512);
      System.arraycopy(tcpOptions, 0, l4, 20, tcpOptions.length);
      System.arraycopy(payload, 0, l4, tcpLength, payload.length);
      return wrap(v6, 6, ttl, tos, id, ipOptions, l4, 16);
    }
  }

  /** A UDP datagram with valid checksums. */
  static byte[] udp(boolean v6, int id, byte[] payload) {
    byte[] l4 = new byte[8 + payload.length];
    put16(l4, 0, 5353);
    put16(l4, 2, 7400);
    put16(l4, 4, l4.length);
    System.arraycopy(payload, 0, l4, 8, payload.length);
    return wrap(v6, 17, 64, 0, id, new byte[0], l4, 6);
  }

  /** IP header around {@code l4}, the transport checksum at {@code csumAt} filled in. */
  static byte[] wrap(
      boolean v6, int proto, int ttl, int tos, int id, byte[] ipOptions, byte[] l4, int csumAt) {
    int ipHeader = v6 ? 40 : 20 + ipOptions.length;
    byte[] p = new byte[ipHeader + l4.length];
    if (v6) {
      p[0] = 0x60;
      put16(p, 4, l4.length);
      p[6] = (byte) proto;
      p[7] = (byte) ttl;
      System.arraycopy(SRC6, 0, p, 8, 16);
      System.arraycopy(DST6, 0, p, 24, 16);
    } else {
      p[0] = (byte) (0x40 | (ipHeader / 4));
      p[1] = (byte) tos;
      put16(p, 2, p.length);
      put16(p, 4, id);
      p[6] = 0x40; // DF
      p[8] = (byte) ttl;
      p[9] = (byte) proto;
      System.arraycopy(SRC4, 0, p, 12, 4);
      System.arraycopy(DST4, 0, p, 16, 4);
      System.arraycopy(ipOptions, 0, p, 20, ipOptions.length);
      put16(p, 10, ~sum(p, 0, ipHeader, 0) & 0xffff);
    }
    System.arraycopy(l4, 0, p, ipHeader, l4.length);
    int c = ~sum(p, ipHeader, l4.length, pseudo(p, v6, ipHeader, proto, l4.length)) & 0xffff;
    put16(p, ipHeader + csumAt, proto == 17 && c == 0 ? 0xffff : c);
    return p;
  }

  static int ipHeaderLength(byte[] p, int off) {
    return (p[off] & 0xf0) == 0x60 ? 40 : (p[off] & 0x0f) * 4;
  }

  /** Asserts lengths and every checksum of the IP packet at {@code p[off, off+len)}. */
  static void assertValid(byte[] p, int off, int len) {
    byte[] q = Arrays.copyOfRange(p, off, off + len);
    boolean v6 = (q[0] & 0xf0) == 0x60;
    int ipHeader = ipHeaderLength(q, 0);
    int proto;
    if (v6) {
      assertEquals(len - 40, get16(q, 4), "IPv6 payload length");
      proto = q[6];
    } else {
      assertEquals(len, get16(q, 2), "IPv4 total length");
      assertEquals(0xffff, sum(q, 0, ipHeader, 0), "IPv4 header checksum");
      proto = q[9];
    }
    int l4 = len - ipHeader;
    if (proto == 17) {
      assertEquals(l4, get16(q, ipHeader + 4), "UDP length");
    }
    assertEquals(
        0xffff, sum(q, ipHeader, l4, pseudo(q, v6, ipHeader, proto, l4)), "transport checksum");
  }

  /** The pseudo-header sum (folded, not complemented) a NEEDS_CSUM packet carries. */
  static int pseudoFolded(byte[] p, int off, int proto, int l4Length) {
    byte[] q = Arrays.copyOfRange(p, off, p.length);
    boolean v6 = (q[0] & 0xf0) == 0x60;
    return fold(pseudo(q, v6, ipHeaderLength(q, 0), proto, l4Length));
  }

  private static long pseudo(byte[] p, boolean v6, int ipHeader, int proto, int l4Length) {
    long s = 0;
    int from = v6 ? 8 : 12;
    int to = v6 ? 40 : 20;
    for (int i = from; i < to; i += 2) {
      s += get16(p, i);
    }
    return s + proto + l4Length;
  }

  /** Ones'-complement sum, folded. */
  static int sum(byte[] p, int off, int len, long initial) {
    long s = initial;
    for (int i = 0; i < len; i += 2) {
      int hi = p[off + i] & 0xff;
      int lo = i + 1 < len ? p[off + i + 1] & 0xff : 0;
      s += (hi << 8) | lo;
    }
    return fold(s);
  }

  static int fold(long s) {
    while ((s >> 16) != 0) {
      s = (s & 0xffff) + (s >> 16);
    }
    return (int) s;
  }

  static byte[] payload(int length, int seed) {
    byte[] b = new byte[length];
    for (int i = 0; i < length; i++) {
      b[i] = (byte) (i * 31 + seed);
    }
    return b;
  }

  static int get16(byte[] b, int at) {
    return ((b[at] & 0xff) << 8) | (b[at + 1] & 0xff);
  }

  static int get32(byte[] b, int at) {
    return (get16(b, at) << 16) | get16(b, at + 2);
  }

  static void put16(byte[] b, int at, int v) {
    b[at] = (byte) (v >>> 8);
    b[at + 1] = (byte) v;
  }

  static void put32(byte[] b, int at, int v) {
    put16(b, at, v >>> 16);
    put16(b, at + 2, v);
  }

  /** A virtio-net header in front of {@code packet}. */
  static byte[] withHeader(
      byte[] packet, int flags, int gsoType, int hdrLen, int gsoSize, int csumStart, int csumOff) {
    byte[] b = new byte[VirtioNetHeader.LENGTH + packet.length];
    VirtioNetHeader.write(b, 0, flags, gsoType, hdrLen, gsoSize, csumStart, csumOff);
    System.arraycopy(packet, 0, b, VirtioNetHeader.LENGTH, packet.length);
    return b;
  }
}
