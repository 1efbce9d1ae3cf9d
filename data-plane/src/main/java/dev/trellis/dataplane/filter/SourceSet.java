package dev.trellis.dataplane.filter;

import dev.trellis.proto.wireguard.AllowedIps;
import java.util.ArrayList;
import java.util.List;

/**
 * Source addresses, compiled to numeric prefixes: IPv4 as address and mask in ints, IPv6 as two
 * longs of address and two of mask; "*" is 0.0.0.0/0 and ::/0. Each family's prefixes sit in one
 * array, so a scan walks consecutive memory. Immutable once built (compiled on the agent's loop
 * thread, read by the packet threads).
 */
final class SourceSet {
  /** A source that is every address of both families. */
  static final String ANY = "*";

  private static final int IPV4_BITS = 32;
  private static final int HALF_IPV6_BITS = 64;

  /** Per IPv4 prefix: address, mask. */
  static final int IPV4_STRIDE = 2;

  /** Per IPv6 prefix: high address, low address, high mask, low mask. */
  static final int IPV6_STRIDE = 4;

  private final int[] ipv4;
  private final long[] ipv6;

  private SourceSet(int[] ipv4, long[] ipv6) {
    this.ipv4 = ipv4;
    this.ipv6 = ipv6;
  }

  /**
   * Compiles "*", addresses and CIDR prefixes (numeric literals only, host bits ignored); entries
   * that are none of these are left out and described in {@code problems}. Null is no source.
   */
  static SourceSet parse(List<String> sources, List<String> problems) {
    List<AllowedIps.Prefix> prefixes = new ArrayList<>();
    for (String s : sources == null ? List.<String>of() : sources) {
      if (s == null) {
        problems.add("null source");
      } else if (s.strip().equals(ANY)) {
        prefixes.add(AllowedIps.Prefix.parse("0.0.0.0/0"));
        prefixes.add(AllowedIps.Prefix.parse("::/0"));
      } else {
        try {
          prefixes.add(AllowedIps.Prefix.parse(s));
        } catch (IllegalArgumentException e) {
          problems.add(e.getMessage());
        }
      }
    }
    return of(prefixes);
  }

  /** Every address any of {@code sets} contains. */
  static SourceSet union(List<SourceSet> sets) {
    int v4 = 0;
    int v6 = 0;
    for (SourceSet s : sets) {
      v4 += s.ipv4.length;
      v6 += s.ipv6.length;
    }
    int[] ipv4 = new int[v4];
    long[] ipv6 = new long[v6];
    v4 = 0;
    v6 = 0;
    for (SourceSet s : sets) {
      System.arraycopy(s.ipv4, 0, ipv4, v4, s.ipv4.length);
      System.arraycopy(s.ipv6, 0, ipv6, v6, s.ipv6.length);
      v4 += s.ipv4.length;
      v6 += s.ipv6.length;
    }
    return new SourceSet(ipv4, ipv6);
  }

  private static SourceSet of(List<AllowedIps.Prefix> prefixes) {
    List<AllowedIps.Prefix> v4 =
        prefixes.stream().filter(p -> p.address().getAddress().length == Integer.BYTES).toList();
    List<AllowedIps.Prefix> v6 =
        prefixes.stream().filter(p -> p.address().getAddress().length != Integer.BYTES).toList();
    int[] ipv4 = new int[v4.size() * IPV4_STRIDE];
    for (int i = 0; i < v4.size(); i++) {
      ipv4[i * IPV4_STRIDE] = bigEndianInt(v4.get(i).address().getAddress(), 0);
      ipv4[i * IPV4_STRIDE + 1] = ipv4Mask(v4.get(i).length());
    }
    long[] ipv6 = new long[v6.size() * IPV6_STRIDE];
    for (int i = 0; i < v6.size(); i++) {
      byte[] raw = v6.get(i).address().getAddress(); // host bits already cleared
      int length = v6.get(i).length();
      ipv6[i * IPV6_STRIDE] = bigEndianLong(raw, 0);
      ipv6[i * IPV6_STRIDE + 1] = bigEndianLong(raw, Long.BYTES);
      ipv6[i * IPV6_STRIDE + 2] = ipv6HighMask(length);
      ipv6[i * IPV6_STRIDE + 3] = ipv6LowMask(length);
    }
    return new SourceSet(ipv4, ipv6);
  }

  boolean matchesIpv4(int address) {
    int[] p = ipv4;
    for (int i = 0; i < p.length; i += IPV4_STRIDE) {
      if ((address & p[i + 1]) == p[i]) {
        return true;
      }
    }
    return false;
  }

  boolean matchesIpv6(long high, long low) {
    long[] p = ipv6;
    for (int i = 0; i < p.length; i += IPV6_STRIDE) {
      if ((high & p[i + 2]) == p[i] && (low & p[i + 3]) == p[i + 1]) {
        return true;
      }
    }
    return false;
  }

  /** An IPv4 source is {@code low} (as an unsigned int); an IPv6 one both halves. */
  boolean matches(boolean ipv6, long high, long low) {
    return ipv6 ? matchesIpv6(high, low) : matchesIpv4((int) low);
  }

  /** A copy of the IPv4 prefixes, {@link #IPV4_STRIDE} ints each: address, mask. */
  int[] ipv4Prefixes() {
    return ipv4.clone();
  }

  /**
   * A copy of the IPv6 prefixes, {@link #IPV6_STRIDE} longs each: high address, low address, high
   * mask, low mask.
   */
  long[] ipv6Prefixes() {
    return ipv6.clone();
  }

  static int ipv4Mask(int length) {
    return length == 0 ? 0 : -1 << (IPV4_BITS - length);
  }

  static long ipv6HighMask(int length) {
    return length == 0 ? 0 : length >= HALF_IPV6_BITS ? -1L : -1L << (HALF_IPV6_BITS - length);
  }

  static long ipv6LowMask(int length) {
    return length <= HALF_IPV6_BITS ? 0 : -1L << (2 * HALF_IPV6_BITS - length);
  }

  private static int bigEndianInt(byte[] b, int at) {
    return ((b[at] & 0xff) << 24)
        | ((b[at + 1] & 0xff) << 16)
        | ((b[at + 2] & 0xff) << 8)
        | (b[at + 3] & 0xff);
  }

  private static long bigEndianLong(byte[] b, int at) {
    return ((long) bigEndianInt(b, at) << 32) | (bigEndianInt(b, at + Integer.BYTES) & 0xffffffffL);
  }
}
