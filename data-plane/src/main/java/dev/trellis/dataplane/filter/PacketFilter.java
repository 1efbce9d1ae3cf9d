package dev.trellis.dataplane.filter;

import dev.trellis.proto.control.ControlMessage.FilterRule;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A compiled access policy and its decision on one inbound packet (decrypted from a peer, about to
 * be written to the tunnel), with Tailscale's client semantics:
 *
 * <ul>
 *   <li>TCP: anything but a connection opener (SYN without ACK) belongs to an existing connection
 *       and passes; a SYN needs a rule with its source, TCP and its destination port.
 *   <li>UDP: a reply to a flow this node opened (in the {@link FlowTable}) passes; anything else
 *       needs a rule with its source, UDP and its destination port.
 *   <li>SCTP: needs a rule listing SCTP explicitly, with its source and destination port.
 *   <li>ICMP/ICMPv6 echo requests pass when any rule lists their source (whatever its ports and
 *       protocols); every other ICMP/ICMPv6 message (replies, errors, neighbour discovery) passes.
 *   <li>Any other protocol needs a rule listing it explicitly and its source (ports do not apply).
 *   <li>Malformed or truncated packets are dropped; IPv6 extension headers and fragments as {@link
 *       IpPacket} describes (fragments after the first pass).
 * </ul>
 *
 * <p>Immutable: compiled on the agent's loop thread, then published whole (a volatile reference in
 * {@link NodeFilter}) and used by the packet threads at the same time. {@link #decide} does not
 * allocate. TCP, UDP and SCTP scan a {@link PortTable} (one entry per rule and source prefix); echo
 * requests check one union of all rules' sources; other protocols scan the rules.
 */
public final class PacketFilter {
  private final CompiledRule[] rules;
  private final PortTable ports;
  private final SourceSet echoSources;
  private final List<String> problems;

  private PacketFilter(
      CompiledRule[] rules, PortTable ports, SourceSet echoSources, List<String> problems) {
    this.rules = rules;
    this.ports = ports;
    this.echoSources = echoSources;
    this.problems = problems;
  }

  /**
   * Compiles a policy's rules (an empty list accepts only replies). Unusable parts of a rule are
   * left out ({@link #problems} says which); the rest of the rule still applies.
   */
  public static PacketFilter compile(List<FilterRule> rules) {
    Objects.requireNonNull(rules, "rules (null is no policy: use no filter)");
    List<String> problems = new ArrayList<>();
    List<CompiledRule> compiled = new ArrayList<>();
    List<SourceSet> sources = new ArrayList<>();
    for (FilterRule rule : rules) {
      if (rule == null) {
        problems.add("null rule");
        continue;
      }
      CompiledRule c = CompiledRule.compile(rule, problems);
      compiled.add(c);
      sources.add(c.sources);
    }
    return new PacketFilter(
        compiled.toArray(CompiledRule[]::new),
        PortTable.of(compiled),
        SourceSet.union(sources),
        List.copyOf(problems));
  }

  /** How many rules are in force. */
  public int ruleCount() {
    return rules.length;
  }

  /** What {@link #compile} left out, for the log. */
  public List<String> problems() {
    return problems;
  }

  /**
   * The verdict on the inbound IP packet {@code p[off, off+len)}; {@code flows} are this node's
   * outbound UDP flows.
   */
  public Verdict decide(byte[] p, int off, int len, FlowTable flows) {
    long location = IpPacket.locate(p, off, len);
    if (location == IpPacket.MALFORMED) {
      return Verdict.MALFORMED;
    }
    if (location == IpPacket.LATER_FRAGMENT) {
      return Verdict.ACCEPT;
    }
    int protocol = IpPacket.protocol(location);
    int t = IpPacket.transportOffset(location);
    int available = IpPacket.transportLength(location);
    boolean ipv6 = IpPacket.isIpv6(p, off);
    long high = ipv6 ? IpPacket.ipv6SourceHigh(p, off) : 0;
    long low = ipv6 ? IpPacket.ipv6SourceLow(p, off) : IpPacket.ipv4Source(p, off) & 0xffffffffL;
    switch (protocol) {
      case IpPacket.PROTOCOL_TCP -> {
        if (available < IpPacket.TCP_HEADER_MIN) {
          return Verdict.MALFORMED;
        }
        int flags = p[t + IpPacket.TCP_FLAGS] & (IpPacket.TCP_SYN | IpPacket.TCP_ACK);
        if (flags != IpPacket.TCP_SYN) {
          return Verdict.ACCEPT;
        }
        return allows(PortTable.TCP, IpPacket.destinationPort(p, t), ipv6, high, low);
      }
      case IpPacket.PROTOCOL_UDP -> {
        if (available < IpPacket.UDP_HEADER) {
          return Verdict.MALFORMED;
        }
        int sourcePort = IpPacket.sourcePort(p, t);
        int destinationPort = IpPacket.destinationPort(p, t);
        if (flows.isReply(ipv6, high, low, sourcePort, destinationPort)) {
          return Verdict.ACCEPT;
        }
        return allows(PortTable.UDP, destinationPort, ipv6, high, low);
      }
      case IpPacket.PROTOCOL_SCTP -> {
        if (available < IpPacket.SCTP_COMMON_HEADER) {
          return Verdict.MALFORMED;
        }
        return allows(PortTable.SCTP, IpPacket.destinationPort(p, t), ipv6, high, low);
      }
      case IpPacket.PROTOCOL_ICMP, IpPacket.PROTOCOL_ICMPV6 -> {
        if (available < IpPacket.ICMP_HEADER) {
          return Verdict.MALFORMED;
        }
        int type = p[t] & 0xff;
        boolean echoRequest =
            protocol == IpPacket.PROTOCOL_ICMP
                ? type == IpPacket.ICMP_ECHO_REQUEST
                : type == IpPacket.ICMPV6_ECHO_REQUEST;
        if (!echoRequest || echoSources.matches(ipv6, high, low)) {
          return Verdict.ACCEPT;
        }
        return Verdict.NO_RULE;
      }
      default -> {
        for (CompiledRule rule : rules) {
          if (rule.allows(protocol, ipv6, high, low)) {
            return Verdict.ACCEPT;
          }
        }
        return Verdict.NO_RULE;
      }
    }
  }

  private Verdict allows(int protocol, int port, boolean ipv6, long high, long low) {
    return ports.allows(protocol, port, ipv6, high, low) ? Verdict.ACCEPT : Verdict.NO_RULE;
  }
}
