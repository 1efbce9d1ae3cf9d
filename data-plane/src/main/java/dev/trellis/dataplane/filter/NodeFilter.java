package dev.trellis.dataplane.filter;

import dev.trellis.dataplane.wireguard.InboundFilter;
import dev.trellis.proto.control.ControlMessage.FilterRule;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * The node's inbound filter as the device sees it: the policy in force (none until the server sends
 * one: then everything passes), the UDP flows this node opened, and how many packets were dropped
 * and why. The flows and counts outlive policy changes, so a new policy does not cut off replies to
 * flows opened before it.
 *
 * <p>Threads: {@link #setRules} on the agent's loop thread (it compiles, then publishes the new
 * policy through one volatile write); {@link #accept} on the inbound threads and {@link #outbound}
 * on the outbound thread, allocation-free and without locks except as {@link FlowTable} says (to
 * add a flow); the counts from any thread.
 */
public final class NodeFilter implements InboundFilter {
  private final FlowTable flows;
  private final EnumMap<Verdict, LongAdder> dropped = new EnumMap<>(Verdict.class);

  /** Null: no policy, every packet passes. */
  private volatile PacketFilter policy;

  public NodeFilter() {
    this(new FlowTable());
  }

  public NodeFilter(FlowTable flows) {
    this.flows = flows;
    for (Verdict v : Verdict.values()) {
      if (v != Verdict.ACCEPT) {
        dropped.put(v, new LongAdder());
      }
    }
  }

  /**
   * Puts the server's rules in force: null is no policy (accept everything), a list (even empty) a
   * policy. Returns the compiled policy (null for none), whose {@link PacketFilter#problems} the
   * caller may log.
   */
  public PacketFilter setRules(List<FilterRule> rules) {
    PacketFilter compiled = rules == null ? null : PacketFilter.compile(rules);
    policy = compiled;
    return compiled;
  }

  /** The policy in force, null when there is none. */
  public PacketFilter policy() {
    return policy;
  }

  public FlowTable flows() {
    return flows;
  }

  @Override
  public boolean accept(byte[] packet, int offset, int length) {
    PacketFilter p = policy;
    if (p == null) {
      return true;
    }
    Verdict v = p.decide(packet, offset, length, flows);
    if (v == Verdict.ACCEPT) {
      return true;
    }
    dropped.get(v).increment();
    return false;
  }

  /** Records UDP flows (even with no policy, so one that arrives later still lets replies in). */
  @Override
  public void outbound(byte[] packet, int offset, int length) {
    long location = IpPacket.locate(packet, offset, length);
    if (location < 0
        || IpPacket.protocol(location) != IpPacket.PROTOCOL_UDP
        || IpPacket.transportLength(location) < IpPacket.UDP_HEADER) {
      return;
    }
    int t = IpPacket.transportOffset(location);
    boolean ipv6 = IpPacket.isIpv6(packet, offset);
    flows.record(
        ipv6,
        ipv6 ? IpPacket.ipv6DestinationHigh(packet, offset) : 0,
        ipv6
            ? IpPacket.ipv6DestinationLow(packet, offset)
            : IpPacket.ipv4Destination(packet, offset) & 0xffffffffL,
        IpPacket.destinationPort(packet, t),
        IpPacket.sourcePort(packet, t));
  }

  /** Inbound packets dropped since start, for every reason. */
  public long dropped() {
    long n = 0;
    for (LongAdder a : dropped.values()) {
      n += a.sum();
    }
    return n;
  }

  /** Inbound packets dropped since start, by {@link Verdict#label}. */
  public Map<String, Long> droppedByReason() {
    Map<String, Long> out = new LinkedHashMap<>();
    dropped.forEach((v, n) -> out.put(v.label, n.sum()));
    return out;
  }
}
