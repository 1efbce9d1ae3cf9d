package dev.trellis.control.policy;

import dev.trellis.proto.wireguard.AllowedIps;
import java.util.Arrays;

/**
 * An IPv4 or IPv6 address or prefix from a policy ({@code 100.64.0.5}, {@code 192.168.1.0/24},
 * {@code fd7a:115c:a1e0::/48}); a single address is a full-length prefix. {@code text} is how the
 * packet filter is told it.
 */
record Cidr(byte[] network, int bits, String text) {

  /**
   * The prefix, or null when {@code s} is not an IP address or prefix (parsed as WireGuard's
   * allowed IPs are: numeric literals only, host bits cleared; IPv6 may be bracketed here).
   */
  static Cidr parse(String s) {
    if (s == null || s.isEmpty()) return null;
    String t = s.startsWith("[") ? s.replaceFirst("^\\[([^\\]]*)\\]", "$1") : s;
    AllowedIps.Prefix prefix;
    try {
      prefix = AllowedIps.Prefix.parse(t);
    } catch (IllegalArgumentException e) {
      return null;
    }
    return new Cidr(prefix.address().getAddress(), prefix.length(), prefix.toString());
  }

  /** Whether {@code address} (4 or 16 bytes) is inside this prefix. */
  boolean contains(byte[] address) {
    if (address == null || address.length != network.length) return false;
    int full = bits / 8;
    for (int i = 0; i < full; i++) {
      if (address[i] != network[i]) return false;
    }
    int rest = bits % 8;
    if (rest == 0) return true;
    int mask = 0xff << (8 - rest) & 0xff;
    return (address[full] & mask) == (network[full] & 0xff);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Cidr c && bits == c.bits && Arrays.equals(network, c.network);
  }

  @Override
  public int hashCode() {
    return 31 * Arrays.hashCode(network) + bits;
  }

  @Override
  public String toString() {
    return text;
  }
}
