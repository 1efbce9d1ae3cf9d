package dev.trellis.dataplane.filter;

import java.net.InetAddress;
import java.net.UnknownHostException;

/**
 * Hand-built IPv4 and IPv6 packets for filter tests and benchmarks: correct lengths, zero checksums
 * (nothing here checks them). Addresses are numeric literals.
 */
public final class TestPackets {
  public static final int ICMP = 1;
  public static final int TCP = 6;
  public static final int UDP = 17;
  public static final int ICMPV6 = 58;
  public static final int SCTP = 132;
  public static final int GRE = 47;

  public static final int SYN = 0x02;
  public static final int ACK = 0x10;
  public static final int RST = 0x04;
  public static final int FIN = 0x01;

  public static final int ECHO_REPLY = 0;
  public static final int DESTINATION_UNREACHABLE = 3;
  public static final int ECHO_REQUEST = 8;
  public static final int ICMPV6_ECHO_REQUEST = 128;
  public static final int ICMPV6_ECHO_REPLY = 129;
  public static final int NEIGHBOR_SOLICITATION = 135;

  private TestPackets() {}

  /** A TCP header (20 bytes) with the given flags. */
  public static byte[] tcp(int sourcePort, int destinationPort, int flags) {
    byte[] h = ports(20, sourcePort, destinationPort);
    h[12] = 0x50; // data offset 5 words
    h[13] = (byte) flags;
    return h;
  }

  /** A UDP header and {@code payload} bytes. */
  public static byte[] udp(int sourcePort, int destinationPort, int payload) {
    byte[] h = ports(8 + payload, sourcePort, destinationPort);
    h[4] = (byte) ((8 + payload) >>> 8);
    h[5] = (byte) (8 + payload);
    return h;
  }

  /** An SCTP common header (12 bytes). */
  public static byte[] sctp(int sourcePort, int destinationPort) {
    return ports(12, sourcePort, destinationPort);
  }

  /** An ICMP or ICMPv6 message of 8 bytes. */
  public static byte[] icmp(int type) {
    byte[] h = new byte[8];
    h[0] = (byte) type;
    return h;
  }

  public static byte[] ipv4(String source, String destination, int protocol, byte[] transport) {
    byte[] p = new byte[20 + transport.length];
    p[0] = 0x45;
    p[2] = (byte) (p.length >>> 8);
    p[3] = (byte) p.length;
    p[8] = 64;
    p[9] = (byte) protocol;
    System.arraycopy(address(source, 4), 0, p, 12, 4);
    System.arraycopy(address(destination, 4), 0, p, 16, 4);
    System.arraycopy(transport, 0, p, 20, transport.length);
    return p;
  }

  /** {@code payload} is everything after the fixed header: extension headers and transport. */
  public static byte[] ipv6(String source, String destination, int nextHeader, byte[] payload) {
    byte[] p = new byte[40 + payload.length];
    p[0] = 0x60;
    p[4] = (byte) (payload.length >>> 8);
    p[5] = (byte) payload.length;
    p[6] = (byte) nextHeader;
    p[7] = 64;
    System.arraycopy(address(source, 16), 0, p, 8, 16);
    System.arraycopy(address(destination, 16), 0, p, 24, 16);
    System.arraycopy(payload, 0, p, 40, payload.length);
    return p;
  }

  /** An IPv6 extension header of 8 bytes (hop-by-hop, routing or destination options) + rest. */
  public static byte[] extension(int nextHeader, byte[] rest) {
    byte[] e = new byte[8 + rest.length];
    e[0] = (byte) nextHeader;
    e[1] = 0; // (0 + 1) * 8 bytes
    System.arraycopy(rest, 0, e, 8, rest.length);
    return e;
  }

  /** An IPv6 fragment header at {@code offsetUnits} × 8 bytes + rest. */
  public static byte[] fragment(int nextHeader, int offsetUnits, boolean more, byte[] rest) {
    byte[] e = new byte[8 + rest.length];
    e[0] = (byte) nextHeader;
    int field = (offsetUnits << 3) | (more ? 1 : 0);
    e[2] = (byte) (field >>> 8);
    e[3] = (byte) field;
    System.arraycopy(rest, 0, e, 8, rest.length);
    return e;
  }

  public static byte[] tcp4(String src, String dst, int sport, int dport, int flags) {
    return ipv4(src, dst, TCP, tcp(sport, dport, flags));
  }

  public static byte[] udp4(String src, String dst, int sport, int dport) {
    return ipv4(src, dst, UDP, udp(sport, dport, 16));
  }

  public static byte[] tcp6(String src, String dst, int sport, int dport, int flags) {
    return ipv6(src, dst, TCP, tcp(sport, dport, flags));
  }

  public static byte[] udp6(String src, String dst, int sport, int dport) {
    return ipv6(src, dst, UDP, udp(sport, dport, 16));
  }

  private static byte[] ports(int length, int sourcePort, int destinationPort) {
    byte[] h = new byte[length];
    h[0] = (byte) (sourcePort >>> 8);
    h[1] = (byte) sourcePort;
    h[2] = (byte) (destinationPort >>> 8);
    h[3] = (byte) destinationPort;
    return h;
  }

  private static byte[] address(String literal, int bytes) {
    try {
      byte[] raw = InetAddress.getByName(literal).getAddress();
      if (raw.length == 4 && bytes == 16 && literal.contains(":")) { // ::ffff:a.b.c.d
        byte[] mapped = new byte[16];
        mapped[10] = (byte) 0xff;
        mapped[11] = (byte) 0xff;
        System.arraycopy(raw, 0, mapped, 12, 4);
        raw = mapped;
      }
      if (raw.length != bytes) {
        throw new IllegalArgumentException(literal + " is not a " + bytes + "-byte address");
      }
      return raw;
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException(e);
    }
  }
}
