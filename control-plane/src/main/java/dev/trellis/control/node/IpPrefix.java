package dev.trellis.control.node;

import java.math.BigInteger;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;

/** An IPv4 or IPv6 prefix in CIDR notation, and addresses at an offset from its start. */
record IpPrefix(byte[] network, int bits, String text) {

  static IpPrefix parse(String cidr, boolean ipv6) {
    int slash = cidr == null ? -1 : cidr.indexOf('/');
    if (slash < 0) throw new IllegalArgumentException("not a CIDR prefix: " + cidr);
    InetAddress address;
    try {
      address =
          ipv6
              ? Inet6Address.ofLiteral(cidr.substring(0, slash))
              : Inet4Address.ofLiteral(cidr.substring(0, slash));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          "not an " + (ipv6 ? "IPv6" : "IPv4") + " prefix: " + cidr, e);
    }
    int bits;
    try {
      bits = Integer.parseInt(cidr.substring(slash + 1));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("bad prefix length in " + cidr, e);
    }
    byte[] bytes = address.getAddress();
    if (bits < 0 || bits > bytes.length * 8)
      throw new IllegalArgumentException("bad prefix length in " + cidr);
    // Host bits of the written address are ignored: 100.64.0.1/10 means 100.64.0.0/10.
    BigInteger mask =
        BigInteger.ONE.shiftLeft(bytes.length * 8 - bits).subtract(BigInteger.ONE).not();
    byte[] network = toBytes(new BigInteger(1, bytes).and(mask), bytes.length);
    return new IpPrefix(network, bits, format(network) + "/" + bits);
  }

  int hostBits() {
    return network.length * 8 - bits;
  }

  /** Number of addresses, capped at 2^62 so it fits a long. */
  long size() {
    return 1L << Math.min(hostBits(), 62);
  }

  String addressAt(long offset) {
    return format(
        toBytes(new BigInteger(1, network).add(BigInteger.valueOf(offset)), network.length));
  }

  /** Offset of an address inside this prefix, or -1 if it is outside or malformed. */
  long offsetOf(String address) {
    try {
      byte[] bytes = InetAddress.ofLiteral(address).getAddress();
      if (bytes.length != network.length) return -1;
      BigInteger offset = new BigInteger(1, bytes).subtract(new BigInteger(1, network));
      return offset.signum() < 0 || offset.bitLength() > hostBits() ? -1 : offset.longValueExact();
    } catch (IllegalArgumentException | ArithmeticException e) {
      return -1;
    }
  }

  private static byte[] toBytes(BigInteger value, int length) {
    byte[] raw = value.toByteArray();
    byte[] out = new byte[length];
    int copy = Math.min(raw.length, length);
    System.arraycopy(raw, raw.length - copy, out, length - copy, copy);
    return out;
  }

  /** Dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run as "::"). */
  static String format(byte[] address) {
    if (address.length == 4) {
      return (address[0] & 0xff)
          + "."
          + (address[1] & 0xff)
          + "."
          + (address[2] & 0xff)
          + "."
          + (address[3] & 0xff);
    }
    int[] groups = new int[8];
    for (int i = 0; i < 8; i++)
      groups[i] = ((address[2 * i] & 0xff) << 8) | (address[2 * i + 1] & 0xff);
    int bestStart = -1, bestLength = 1;
    for (int i = 0; i < 8; ) {
      if (groups[i] != 0) {
        i++;
        continue;
      }
      int start = i;
      while (i < 8 && groups[i] == 0) i++;
      if (i - start > bestLength) {
        bestStart = start;
        bestLength = i - start;
      }
    }
    StringBuilder text = new StringBuilder();
    for (int i = 0; i < 8; i++) {
      if (i == bestStart) {
        text.append("::");
        i += bestLength - 1;
        continue;
      }
      if (!text.isEmpty() && text.charAt(text.length() - 1) != ':') text.append(':');
      text.append(Integer.toHexString(groups[i]));
    }
    return text.toString();
  }
}
