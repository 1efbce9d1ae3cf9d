package dev.trellis.dataplane.filter;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * Reads the parts of an IPv4 or IPv6 packet the filter decides on: where the transport header
 * starts, which protocol it is, addresses and ports. Stateless and allocation-free; any thread.
 *
 * <p>IPv6 extension headers: hop-by-hop options (0), routing (43), destination options (60) and
 * fragment (44) are walked, up to {@link #MAX_EXTENSION_HEADERS} of them; any other next header is
 * the packet's protocol (so AH, ESP or "no next header" are protocols the policy must list). A
 * fragment that is not the first has no transport header: it is reported as {@link #LATER_FRAGMENT}
 * (the first fragment, which carries the ports and flags, is what gets filtered; without it the
 * host cannot reassemble the rest). A TCP fragment at offset 8 bytes could rewrite the first
 * fragment's flags (RFC 1858): it is {@link #MALFORMED}.
 */
final class IpPacket {
  static final int PROTOCOL_ICMP = 1;
  static final int PROTOCOL_TCP = 6;
  static final int PROTOCOL_UDP = 17;
  static final int PROTOCOL_ICMPV6 = 58;
  static final int PROTOCOL_SCTP = 132;

  static final int IPV4_HEADER_MIN = 20;
  static final int IPV6_HEADER = 40;

  /** Minimum transport header lengths: what must be present to read ports and TCP flags. */
  static final int TCP_HEADER_MIN = 20;

  static final int UDP_HEADER = 8;
  static final int SCTP_COMMON_HEADER = 12;
  static final int ICMP_HEADER = 8;

  static final int TCP_FLAGS = 13;
  static final int TCP_SYN = 0x02;
  static final int TCP_ACK = 0x10;

  static final int ICMP_ECHO_REQUEST = 8;
  static final int ICMPV6_ECHO_REQUEST = 128;

  static final int MAX_EXTENSION_HEADERS = 8;

  /** {@link #locate} result: not a sane IPv4/IPv6 packet, or truncated. */
  static final long MALFORMED = -1;

  /** {@link #locate} result: a fragment other than the first (no transport header). */
  static final long LATER_FRAGMENT = -2;

  private static final int IPV4_TOTAL_LENGTH = 2;
  private static final int IPV4_FRAGMENT = 6;
  private static final int IPV4_FRAGMENT_OFFSET_MASK = 0x1fff;
  private static final int IPV4_PROTOCOL = 9;
  private static final int IPV4_SOURCE = 12;
  private static final int IPV4_DESTINATION = 16;
  private static final int IPV6_PAYLOAD_LENGTH = 4;
  private static final int IPV6_NEXT_HEADER = 6;
  private static final int IPV6_SOURCE = 8;
  private static final int IPV6_DESTINATION = 24;

  private static final int TRANSPORT_SOURCE_PORT = 0;
  private static final int TRANSPORT_DESTINATION_PORT = 2;

  private static final int EXT_HOP_BY_HOP = 0;
  private static final int EXT_ROUTING = 43;
  private static final int EXT_FRAGMENT = 44;
  private static final int EXT_DESTINATION_OPTIONS = 60;
  private static final int EXT_FRAGMENT_LENGTH = 8;

  /** A fragment offset (in 8-byte units) that overlaps the TCP flags of the first fragment. */
  private static final int RFC1858_TCP_OFFSET = 1;

  private static final VarHandle INT_BE =
      MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);
  private static final VarHandle LONG_BE =
      MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);

  private IpPacket() {}

  /**
   * Finds the transport header of the packet {@code p[off, off+len)}: {@link #MALFORMED}, {@link
   * #LATER_FRAGMENT}, or a location to read with {@link #transportOffset}, {@link #transportLength}
   * and {@link #protocol}. Bytes past the IP header's own length are ignored.
   */
  static long locate(byte[] p, int off, int len) {
    if (len < 1 || off < 0 || off + len > p.length) {
      return MALFORMED;
    }
    int version = (p[off] & 0xff) >>> 4;
    if (version == 4) {
      return locateIpv4(p, off, len);
    }
    if (version == 6) {
      return locateIpv6(p, off, len);
    }
    return MALFORMED;
  }

  private static long locateIpv4(byte[] p, int off, int len) {
    if (len < IPV4_HEADER_MIN) {
      return MALFORMED;
    }
    int headerLength = (p[off] & 0x0f) * 4;
    int total = u16(p, off + IPV4_TOTAL_LENGTH);
    if (headerLength < IPV4_HEADER_MIN || total < headerLength || total > len) {
      return MALFORMED;
    }
    int protocol = p[off + IPV4_PROTOCOL] & 0xff;
    int fragmentOffset = u16(p, off + IPV4_FRAGMENT) & IPV4_FRAGMENT_OFFSET_MASK;
    if (fragmentOffset != 0) {
      return laterFragment(protocol, fragmentOffset);
    }
    return location(off + headerLength, total - headerLength, protocol);
  }

  private static long locateIpv6(byte[] p, int off, int len) {
    if (len < IPV6_HEADER) {
      return MALFORMED;
    }
    int end = off + IPV6_HEADER + u16(p, off + IPV6_PAYLOAD_LENGTH);
    if (end > off + len) {
      return MALFORMED;
    }
    int next = p[off + IPV6_NEXT_HEADER] & 0xff;
    int at = off + IPV6_HEADER;
    for (int seen = 0; ; seen++) {
      switch (next) {
        case EXT_HOP_BY_HOP, EXT_ROUTING, EXT_DESTINATION_OPTIONS -> {
          if (seen == MAX_EXTENSION_HEADERS || end - at < 2) {
            return MALFORMED;
          }
          int length = ((p[at + 1] & 0xff) + 1) * 8;
          if (end - at < length) {
            return MALFORMED;
          }
          next = p[at] & 0xff;
          at += length;
        }
        case EXT_FRAGMENT -> {
          if (seen == MAX_EXTENSION_HEADERS || end - at < EXT_FRAGMENT_LENGTH) {
            return MALFORMED;
          }
          next = p[at] & 0xff;
          int fragmentOffset = u16(p, at + 2) >>> 3;
          at += EXT_FRAGMENT_LENGTH;
          if (fragmentOffset != 0) {
            return laterFragment(next, fragmentOffset);
          }
        }
        default -> {
          return location(at, end - at, next);
        }
      }
    }
  }

  private static long laterFragment(int protocol, int fragmentOffset) {
    return protocol == PROTOCOL_TCP && fragmentOffset == RFC1858_TCP_OFFSET
        ? MALFORMED
        : LATER_FRAGMENT;
  }

  private static long location(int transportOffset, int transportLength, int protocol) {
    return ((long) protocol << 48)
        | ((long) transportLength << 32)
        | (transportOffset & 0xffffffffL);
  }

  /** Index in the array of the transport header of a {@link #locate} location. */
  static int transportOffset(long location) {
    return (int) location;
  }

  /** Bytes from the transport header to the end of the IP packet. */
  static int transportLength(long location) {
    return (int) (location >>> 32) & 0xffff;
  }

  static int protocol(long location) {
    return (int) (location >>> 48) & 0xff;
  }

  /** Whether the (already located) packet at {@code off} is IPv6. */
  static boolean isIpv6(byte[] p, int off) {
    return (p[off] & 0xf0) == 0x60;
  }

  static int ipv4Source(byte[] p, int off) {
    return (int) INT_BE.get(p, off + IPV4_SOURCE);
  }

  static int ipv4Destination(byte[] p, int off) {
    return (int) INT_BE.get(p, off + IPV4_DESTINATION);
  }

  /** The high 64 bits of an IPv6 packet's source address. */
  static long ipv6SourceHigh(byte[] p, int off) {
    return (long) LONG_BE.get(p, off + IPV6_SOURCE);
  }

  static long ipv6SourceLow(byte[] p, int off) {
    return (long) LONG_BE.get(p, off + IPV6_SOURCE + Long.BYTES);
  }

  static long ipv6DestinationHigh(byte[] p, int off) {
    return (long) LONG_BE.get(p, off + IPV6_DESTINATION);
  }

  static long ipv6DestinationLow(byte[] p, int off) {
    return (long) LONG_BE.get(p, off + IPV6_DESTINATION + Long.BYTES);
  }

  /** Source port of a TCP, UDP or SCTP header at {@code transport}. */
  static int sourcePort(byte[] p, int transport) {
    return u16(p, transport + TRANSPORT_SOURCE_PORT);
  }

  /** Destination port of a TCP, UDP or SCTP header at {@code transport}. */
  static int destinationPort(byte[] p, int transport) {
    return u16(p, transport + TRANSPORT_DESTINATION_PORT);
  }

  static int u16(byte[] p, int at) {
    return ((p[at] & 0xff) << 8) | (p[at + 1] & 0xff);
  }
}
