package dev.trellis.dataplane.filter;

import dev.trellis.proto.control.ControlMessage.FilterRule;
import dev.trellis.proto.control.ControlMessage.PortRange;
import java.util.List;
import java.util.stream.IntStream;

/**
 * One {@link FilterRule}, validated and compiled: its sources as numeric prefixes, its protocols as
 * a 256-bit set, its port ranges as (first, last) pairs. Immutable (compiled on the agent's loop
 * thread, read by the packet threads). The per-packet scan for TCP, UDP and SCTP uses the {@link
 * PortTable} built from these; this class answers for the other protocols.
 */
final class CompiledRule {
  /** What an empty (or null) protocol list means. */
  private static final int[] DEFAULT_PROTOCOLS = {
    IpPacket.PROTOCOL_TCP, IpPacket.PROTOCOL_UDP, IpPacket.PROTOCOL_ICMP, IpPacket.PROTOCOL_ICMPV6
  };

  private static final int MAX_PROTOCOL = 255;
  private static final int MAX_PORT = 65535;

  final SourceSet sources;

  /** Bit {@code p % 64} of word {@code p / 64}: IP protocol {@code p} is allowed. */
  private final long[] protocols = new long[(MAX_PROTOCOL + 1) / Long.SIZE];

  /** First and last port of each range, in pairs. */
  private final int[] portRanges;

  private CompiledRule(SourceSet sources, int[] portRanges) {
    this.sources = sources;
    this.portRanges = portRanges;
  }

  /**
   * Compiles one rule. Unusable parts (a bad source, a protocol outside 0-255, a port range outside
   * 0-65535 or upside down) are left out and described in {@code problems}; null lists are empty.
   */
  static CompiledRule compile(FilterRule rule, List<String> problems) {
    SourceSet sources = SourceSet.parse(rule.srcs(), problems);
    IntStream.Builder ranges = IntStream.builder();
    for (PortRange r : rule.ports() == null ? List.<PortRange>of() : rule.ports()) {
      if (r == null || r.first() < 0 || r.last() > MAX_PORT || r.first() > r.last()) {
        problems.add("port range " + r + " is not within 0-" + MAX_PORT);
      } else {
        ranges.add(r.first()).add(r.last());
      }
    }
    CompiledRule compiled = new CompiledRule(sources, ranges.build().toArray());
    List<Integer> protocols = rule.protos();
    if (protocols == null || protocols.isEmpty()) {
      for (int p : DEFAULT_PROTOCOLS) {
        compiled.allowProtocol(p);
      }
    } else {
      for (Integer p : protocols) {
        if (p == null || p < 0 || p > MAX_PROTOCOL) {
          problems.add("protocol " + p + " is not within 0-" + MAX_PROTOCOL);
        } else {
          compiled.allowProtocol(p);
        }
      }
    }
    return compiled;
  }

  private void allowProtocol(int protocol) {
    protocols[protocol >>> 6] |= 1L << protocol;
  }

  boolean allowsProtocol(int protocol) {
    return (protocols[protocol >>> 6] & (1L << protocol)) != 0;
  }

  /** A copy of the port ranges: first and last port of each, in pairs. */
  int[] portRanges() {
    return portRanges.clone();
  }

  /** The rule lists {@code protocol} and contains this source (ports do not apply). */
  boolean allows(int protocol, boolean ipv6, long sourceHigh, long sourceLow) {
    return allowsProtocol(protocol) && sources.matches(ipv6, sourceHigh, sourceLow);
  }
}
