package dev.trellis.dataplane.offload;

import static dev.trellis.dataplane.offload.Checksum.getInt;
import static dev.trellis.dataplane.offload.Checksum.getShort;
import static dev.trellis.dataplane.offload.Checksum.putInt;
import static dev.trellis.dataplane.offload.Checksum.putShort;

/**
 * Turns what a TUN with offloads hands over (a virtio-net header and one packet that may stand for
 * many: TSO or USO) into the IP packets it stands for, each with complete checksums, as a peer that
 * has no offloads expects them on the wire.
 *
 * <p>A large TCP packet becomes segments of {@code gso_size} payload bytes: the IPv4 identification
 * counts up, lengths and sequence numbers follow the payload, FIN and PSH stay on the last segment
 * and CWR on the first. A UDP (USO) packet becomes datagrams with their own UDP header. A single
 * packet whose checksum the kernel left to us ({@code NEEDS_CSUM}) gets it completed.
 *
 * <p>Owned by the one thread that reads the TUN; the packets stay valid until the next {@link
 * #split}.
 */
public final class GsoSplitter {
  private static final int IPV4_MIN_HEADER = 20;
  private static final int IPV6_HEADER = 40;
  private static final int TCP_MIN_HEADER = 20;
  private static final int UDP_HEADER = 8;
  private static final int TCP_FIN = 0x01;
  private static final int TCP_PSH = 0x08;
  private static final int TCP_CWR = 0x80;

  private byte[] out = new byte[96 * 1024];
  private int[] offsets = new int[64];
  private int[] lengths = new int[64];
  private byte[] source;
  private int count;

  /**
   * Splits the header and packet at {@code in[off, off+len)}.
   *
   * @return how many packets it stood for; 0 when it is malformed (nothing to send)
   */
  public int split(byte[] in, int off, int len) {
    count = 0;
    if (len <= VirtioNetHeader.LENGTH) {
      return 0;
    }
    int flags = VirtioNetHeader.flags(in, off);
    int gsoType = VirtioNetHeader.gsoType(in, off) & ~VirtioNetHeader.GSO_ECN;
    int ip = off + VirtioNetHeader.LENGTH;
    int packetLength = len - VirtioNetHeader.LENGTH;
    if (gsoType == VirtioNetHeader.GSO_NONE) {
      if ((flags & VirtioNetHeader.F_NEEDS_CSUM) != 0
          && !completeChecksum(
              in,
              ip,
              packetLength,
              VirtioNetHeader.csumStart(in, off),
              VirtioNetHeader.csumOffset(in, off))) {
        return 0;
      }
      return single(in, ip, packetLength);
    }
    int gsoSize = VirtioNetHeader.gsoSize(in, off);
    if (gsoSize == 0) {
      return 0;
    }
    return switch (gsoType) {
      case VirtioNetHeader.GSO_TCPV4, VirtioNetHeader.GSO_TCPV6 ->
          splitTcp(in, ip, packetLength, gsoSize, gsoType == VirtioNetHeader.GSO_TCPV6);
      case VirtioNetHeader.GSO_UDP_L4 -> splitUdp(in, ip, packetLength, gsoSize);
      default -> 0;
    };
  }

  public int count() {
    return count;
  }

  /** The array packet {@code i} is in. */
  public byte[] buffer() {
    return source;
  }

  public int offset(int i) {
    return offsets[i];
  }

  public int length(int i) {
    return lengths[i];
  }

  private int single(byte[] in, int ip, int length) {
    source = in;
    offsets[0] = ip;
    lengths[0] = length;
    count = 1;
    return 1;
  }

  /** The checksum at start+offset over [start, end), where the field holds the pseudo sum. */
  private static boolean completeChecksum(byte[] p, int ip, int length, int start, int offset) {
    if (start + offset + 2 > length) {
      return false;
    }
    int sum = Checksum.finish(Checksum.add(0, p, ip + start, length - start));
    putShort(p, ip + start + offset, sum);
    return true;
  }

  /** The IP header's length and its transport protocol, or -1 when it is not one we split. */
  private static int ipHeaderLength(byte[] p, int ip, int length, int protocol) {
    int version = (p[ip] & 0xff) >>> 4;
    if (version == 4 && length >= IPV4_MIN_HEADER) {
      int ihl = (p[ip] & 0x0f) * 4;
      return ihl >= IPV4_MIN_HEADER && ihl <= length && (p[ip + 9] & 0xff) == protocol ? ihl : -1;
    }
    if (version == 6 && length >= IPV6_HEADER) {
      return (p[ip + 6] & 0xff) == protocol ? IPV6_HEADER : -1; // no extension headers
    }
    return -1;
  }

  private int splitTcp(byte[] in, int ip, int length, int gsoSize, boolean v6) {
    int ipHeader = ipHeaderLength(in, ip, length, Checksum.PROTO_TCP);
    if (ipHeader < 0 || v6 != (ipHeader == IPV6_HEADER) || ipHeader + TCP_MIN_HEADER > length) {
      return 0;
    }
    int tcp = ip + ipHeader;
    int tcpHeader = ((in[tcp + 12] & 0xff) >>> 4) * 4;
    int headers = ipHeader + tcpHeader;
    if (tcpHeader < TCP_MIN_HEADER || headers > length) {
      return 0;
    }
    int payload = length - headers;
    int segments = Math.max(1, (payload + gsoSize - 1) / gsoSize);
    reserve(segments, length + (segments - 1) * headers);
    int seq0 = getInt(in, tcp + 4);
    int id0 = v6 ? 0 : getShort(in, ip + 4);
    int flags0 = in[tcp + 13] & 0xff;
    int o = 0;
    for (int i = 0; i < segments; i++) {
      int chunk = Math.min(gsoSize, payload - i * gsoSize);
      int segLength = headers + chunk;
      System.arraycopy(in, ip, out, o, headers);
      System.arraycopy(in, ip + headers + i * gsoSize, out, o + headers, chunk);
      fixIp(o, ipHeader, v6, segLength, id0 + i);
      int t = o + ipHeader;
      putInt(out, t + 4, seq0 + i * gsoSize);
      int f = flags0;
      if (i < segments - 1) {
        f &= ~(TCP_FIN | TCP_PSH);
      }
      if (i > 0) {
        f &= ~TCP_CWR;
      }
      out[t + 13] = (byte) f;
      putShort(out, t + 16, 0);
      long sum = Checksum.pseudoHeader(out, o, v6, Checksum.PROTO_TCP, tcpHeader + chunk);
      putShort(out, t + 16, Checksum.finish(Checksum.add(sum, out, t, tcpHeader + chunk)));
      offsets[i] = o;
      lengths[i] = segLength;
      o += segLength;
    }
    source = out;
    count = segments;
    return segments;
  }

  private int splitUdp(byte[] in, int ip, int length, int gsoSize) {
    int ipHeader = ipHeaderLength(in, ip, length, Checksum.PROTO_UDP);
    if (ipHeader < 0 || ipHeader + UDP_HEADER > length) {
      return 0;
    }
    boolean v6 = ipHeader == IPV6_HEADER;
    int headers = ipHeader + UDP_HEADER;
    int payload = length - headers;
    int segments = Math.max(1, (payload + gsoSize - 1) / gsoSize);
    reserve(segments, length + (segments - 1) * headers);
    int id0 = v6 ? 0 : getShort(in, ip + 4);
    int o = 0;
    for (int i = 0; i < segments; i++) {
      int chunk = Math.min(gsoSize, payload - i * gsoSize);
      int segLength = headers + chunk;
      System.arraycopy(in, ip, out, o, headers);
      System.arraycopy(in, ip + headers + i * gsoSize, out, o + headers, chunk);
      fixIp(o, ipHeader, v6, segLength, id0 + i);
      int u = o + ipHeader;
      putShort(out, u + 4, UDP_HEADER + chunk);
      putShort(out, u + 6, 0);
      long sum = Checksum.pseudoHeader(out, o, v6, Checksum.PROTO_UDP, UDP_HEADER + chunk);
      int c = Checksum.finish(Checksum.add(sum, out, u, UDP_HEADER + chunk));
      putShort(out, u + 6, c == 0 ? 0xffff : c); // 0 means "no checksum" in UDP
      offsets[i] = o;
      lengths[i] = segLength;
      o += segLength;
    }
    source = out;
    count = segments;
    return segments;
  }

  private void fixIp(int o, int ipHeader, boolean v6, int segLength, int id) {
    if (v6) {
      putShort(out, o + 4, segLength - IPV6_HEADER);
    } else {
      putShort(out, o + 2, segLength);
      putShort(out, o + 4, id & 0xffff);
      putShort(out, o + 10, 0);
      putShort(out, o + 10, Checksum.ipv4Header(out, o, ipHeader));
    }
  }

  private void reserve(int segments, int bytes) {
    if (segments > offsets.length) {
      offsets = new int[segments];
      lengths = new int[segments];
    }
    if (bytes > out.length) {
      out = new byte[bytes];
    }
  }
}
