package dev.trellis.dataplane.filter;

import java.util.List;
import java.util.stream.IntStream;
import java.util.stream.LongStream;

/**
 * The TCP, UDP and SCTP part of a policy, flattened for the per-packet scan: one entry per (rule,
 * source prefix) with the prefix, which of the three protocols the rule allows, and where its port
 * ranges are, all in primitive arrays (one per family, plus one of port ranges shared by all). A
 * packet is allowed when any entry matches; the order does not matter. A scan dereferences no
 * objects: it walks consecutive memory.
 *
 * <p>Immutable (built on the agent's loop thread, read by the packet threads).
 */
final class PortTable {
  // Protocol bits of an entry.
  static final int TCP = 1;
  static final int UDP = 2;
  static final int SCTP = 4;

  // IPv4 entry: address, mask, protocol bits, index of its first port range, index after its last.
  private static final int V4_ADDRESS = 0;
  private static final int V4_MASK = 1;
  private static final int V4_PROTOCOLS = 2;
  private static final int V4_PORTS_FROM = 3;
  private static final int V4_PORTS_TO = 4;
  private static final int V4_STRIDE = 5;

  // IPv6 entry: high, low, high mask, low mask, protocol bits, port range indices.
  private static final int V6_HIGH = 0;
  private static final int V6_LOW = 1;
  private static final int V6_HIGH_MASK = 2;
  private static final int V6_LOW_MASK = 3;
  private static final int V6_PROTOCOLS = 4;
  private static final int V6_PORTS_FROM = 5;
  private static final int V6_PORTS_TO = 6;
  private static final int V6_STRIDE = 7;

  private final int[] ipv4;
  private final long[] ipv6;

  /** First and last port of each range, in pairs; entries point at a slice. */
  private final int[] ports;

  private PortTable(int[] ipv4, long[] ipv6, int[] ports) {
    this.ipv4 = ipv4;
    this.ipv6 = ipv6;
    this.ports = ports;
  }

  static PortTable of(List<CompiledRule> rules) {
    IntStream.Builder v4 = IntStream.builder();
    LongStream.Builder v6 = LongStream.builder();
    IntStream.Builder ports = IntStream.builder();
    int portCount = 0;
    for (CompiledRule rule : rules) {
      int protocols =
          (rule.allowsProtocol(IpPacket.PROTOCOL_TCP) ? TCP : 0)
              | (rule.allowsProtocol(IpPacket.PROTOCOL_UDP) ? UDP : 0)
              | (rule.allowsProtocol(IpPacket.PROTOCOL_SCTP) ? SCTP : 0);
      int[] ranges = rule.portRanges();
      if (protocols == 0 || ranges.length == 0) {
        continue;
      }
      int from = portCount;
      for (int r : ranges) {
        ports.add(r);
      }
      portCount += ranges.length;
      int[] p4 = rule.sources.ipv4Prefixes();
      for (int i = 0; i < p4.length; i += SourceSet.IPV4_STRIDE) {
        v4.add(p4[i]).add(p4[i + 1]).add(protocols).add(from).add(portCount);
      }
      long[] p6 = rule.sources.ipv6Prefixes();
      for (int i = 0; i < p6.length; i += SourceSet.IPV6_STRIDE) {
        v6.add(p6[i]).add(p6[i + 1]).add(p6[i + 2]).add(p6[i + 3]);
        v6.add(protocols).add(from).add(portCount);
      }
    }
    return new PortTable(v4.build().toArray(), v6.build().toArray(), ports.build().toArray());
  }

  /**
   * Whether an entry allows a packet of {@code protocol} (one of the bits) to {@code port} from
   * this source (IPv4: {@code low} as an unsigned int; IPv6: both halves).
   */
  boolean allows(int protocol, int port, boolean ipv6, long high, long low) {
    return ipv6 ? allowsIpv6(protocol, port, high, low) : allowsIpv4(protocol, port, (int) low);
  }

  private boolean allowsIpv4(int protocol, int port, int source) {
    int[] e = ipv4;
    for (int i = 0; i < e.length; i += V4_STRIDE) {
      if ((source & e[i + V4_MASK]) == e[i + V4_ADDRESS]
          && (e[i + V4_PROTOCOLS] & protocol) != 0
          && inRanges(port, e[i + V4_PORTS_FROM], e[i + V4_PORTS_TO])) {
        return true;
      }
    }
    return false;
  }

  private boolean allowsIpv6(int protocol, int port, long high, long low) {
    long[] e = ipv6;
    for (int i = 0; i < e.length; i += V6_STRIDE) {
      if ((high & e[i + V6_HIGH_MASK]) == e[i + V6_HIGH]
          && (low & e[i + V6_LOW_MASK]) == e[i + V6_LOW]
          && (e[i + V6_PROTOCOLS] & protocol) != 0
          && inRanges(port, (int) e[i + V6_PORTS_FROM], (int) e[i + V6_PORTS_TO])) {
        return true;
      }
    }
    return false;
  }

  private boolean inRanges(int port, int from, int to) {
    int[] p = ports;
    for (int i = from; i < to; i += 2) {
      if (port >= p[i] && port <= p[i + 1]) {
        return true;
      }
    }
    return false;
  }
}
