package dev.trellis.dataplane.dns;

import dev.trellis.proto.wireguard.AllowedIps;
import java.math.BigInteger;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;
import org.xbill.DNS.Name;
import org.xbill.DNS.ReverseMap;

/**
 * The reverse-lookup zones that cover the overlay's prefixes: reverse names have a label per octet
 * (IPv4) or per nibble (IPv6), so a prefix whose length falls between labels is covered by several
 * zones, e.g. 100.64.0.0/10 by the 64 zones {@code 64.100.in-addr.arpa} to {@code
 * 127.100.in-addr.arpa}, and fd7a:115c:a1e0::/48 by {@code 0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa}.
 */
final class ReverseZones {
  /** A prefix that needs more zones than this is covered only by its first ones. */
  static final int MAX_ZONES_PER_PREFIX = 256;

  private ReverseZones() {}

  /** The zones, without the final dot, for prefixes such as {@code 100.64.0.0/10}. */
  static List<String> of(List<String> prefixes) {
    List<String> zones = new ArrayList<>();
    for (String text : prefixes) {
      AllowedIps.Prefix prefix;
      try {
        prefix = AllowedIps.Prefix.parse(text.strip());
      } catch (IllegalArgumentException e) {
        continue;
      }
      byte[] base = prefix.address().getAddress();
      int bits = base.length * 8;
      int labelBits = base.length == 4 ? 8 : 4;
      int zoneLength = Math.ceilDiv(prefix.length(), labelBits) * labelBits;
      int count = 1 << Math.min(zoneLength - prefix.length(), 8);
      BigInteger start = new BigInteger(1, base);
      for (int i = 0; i < Math.min(count, MAX_ZONES_PER_PREFIX); i++) {
        BigInteger address = start.add(BigInteger.valueOf(i).shiftLeft(bits - zoneLength));
        Name full = ReverseMap.fromAddress(toAddress(address, base.length));
        Name zone = new Name(full, (bits - zoneLength) / labelBits);
        zones.add(zone.toString(true));
      }
    }
    return zones;
  }

  private static InetAddress toAddress(BigInteger value, int length) {
    byte[] raw = value.toByteArray();
    byte[] out = new byte[length];
    int copy = Math.min(raw.length, length);
    System.arraycopy(raw, raw.length - copy, out, length - copy, copy);
    try {
      return InetAddress.getByAddress(out);
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException(e);
    }
  }
}
