package dev.trellis.control.policy;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/** IP protocol numbers and the names a policy's {@code proto} may use for them. */
final class Protocols {
  static final int ICMP = 1;
  static final int TCP = 6;
  static final int UDP = 17;
  static final int ICMPV6 = 58;
  static final int SCTP = 132;

  /** What a rule without {@code proto} covers. */
  static final Set<Integer> DEFAULT = Set.of(TCP, UDP, ICMP, ICMPV6);

  private static final Map<String, List<Integer>> NAMES =
      Map.ofEntries(
          Map.entry("tcp", List.of(TCP)),
          Map.entry("udp", List.of(UDP)),
          Map.entry("icmp", List.of(ICMP)),
          Map.entry("ipv6-icmp", List.of(ICMPV6)),
          Map.entry("icmpv6", List.of(ICMPV6)),
          Map.entry("sctp", List.of(SCTP)),
          Map.entry("igmp", List.of(2)),
          Map.entry("ipv4", List.of(4)),
          Map.entry("ip-in-ip", List.of(4)),
          Map.entry("egp", List.of(8)),
          Map.entry("igp", List.of(9)),
          Map.entry("gre", List.of(47)),
          Map.entry("esp", List.of(50)),
          Map.entry("ah", List.of(51)));

  private Protocols() {}

  /** The protocol numbers of a {@code proto} value, or null when it names none. */
  static List<Integer> parse(String proto) {
    String p = proto.strip().toLowerCase(Locale.ROOT);
    List<Integer> named = NAMES.get(p);
    if (named != null) return named;
    try {
      int n = Integer.parseInt(p);
      return n >= 0 && n <= 255 ? List.of(n) : null;
    } catch (NumberFormatException e) {
      return null;
    }
  }

  /** The protocol a test or a question is about: a name or number, default TCP. */
  static int one(String proto) {
    if (proto == null || proto.isBlank()) return TCP;
    List<Integer> n = parse(proto);
    return n == null ? -1 : n.getFirst();
  }

  /** Whether a rule with {@code protos} (empty: the default set) covers {@code proto}. */
  static boolean covers(Set<Integer> protos, int proto) {
    return (protos.isEmpty() ? DEFAULT : protos).contains(proto);
  }

  /** Whether the protocol has ports (which rules then restrict). */
  static boolean hasPorts(int proto) {
    return proto == TCP || proto == UDP || proto == SCTP;
  }

  static String name(int proto) {
    return switch (proto) {
      case TCP -> "tcp";
      case UDP -> "udp";
      case ICMP -> "icmp";
      case ICMPV6 -> "ipv6-icmp";
      case SCTP -> "sctp";
      default -> Integer.toString(proto);
    };
  }
}
