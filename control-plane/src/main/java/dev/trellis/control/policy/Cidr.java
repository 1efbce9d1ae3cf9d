package dev.trellis.control.policy;

import dev.trellis.control.node.IpPrefix;
import java.net.InetAddress;
import java.util.Arrays;

/**
 * An IPv4 or IPv6 address or prefix from a policy ({@code 100.64.0.5}, {@code 192.168.1.0/24},
 * {@code fd7a:115c:a1e0::/48}); a single address is a full-length prefix. {@code text} is how the
 * packet filter is told it.
 */
record Cidr(byte[] network, int bits, String text) {

  /** The prefix, or null when {@code s} is not an IP address or prefix. */
  static Cidr parse(String s) {
    if (s == null || s.isEmpty()) return null;
    int slash = s.indexOf('/');
    String host = slash < 0 ? s : s.substring(0, slash);
    if (host.startsWith("[") && host.endsWith("]")) host = host.substring(1, host.length() - 1);
    // Only literals: InetAddress.ofLiteral never resolves names.
    if (!host.matches("[0-9a-fA-F:.]+") || !(host.contains(".") || host.contains(":"))) {
      return null;
    }
    byte[] address;
    try {
      address = InetAddress.ofLiteral(host).getAddress();
    } catch (IllegalArgumentException e) {
      return null;
    }
    int max = address.length * 8;
    int bits;
    if (slash < 0) {
      bits = max;
    } else {
      try {
        bits = Integer.parseInt(s.substring(slash + 1));
      } catch (NumberFormatException e) {
        return null;
      }
      if (bits < 0 || bits > max) return null;
    }
    byte[] network = address.clone();
    for (int i = 0; i < network.length; i++) {
      int keep = Math.max(0, Math.min(8, bits - i * 8));
      network[i] &= (byte) (0xff << (8 - keep));
    }
    return new Cidr(network, bits, IpPrefix.format(network) + "/" + bits);
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
