package dev.trellis.control.policy;

import dev.trellis.proto.control.ControlMessage.PortRange;
import java.util.List;
import java.util.Set;

/**
 * One {@code acls} entry: sources may open connections to the destinations' ports with the rule's
 * protocols. {@code index} is its position in {@code acls}, {@code line} where it starts.
 */
public record Acl(
    int index, int line, List<Selector> src, List<Acl.Destination> dst, Set<Integer> protos) {

  /** {@code host:ports} of a {@code dst}. */
  public record Destination(Selector host, List<PortRange> ports, String text) {
    boolean allowsPort(int port) {
      for (PortRange r : ports) {
        if (port >= r.first() && port <= r.last()) return true;
      }
      return false;
    }
  }

  /** Whether {@code p} is one of this rule's sources. */
  boolean fromSource(Principal p) {
    for (Selector s : src) {
      if (s.matches(p)) return true;
    }
    return false;
  }

  /** Whether {@code dst} is one of {@code d}'s hosts, for a connection from {@code src}. */
  static boolean toHost(Destination d, Principal src, Principal dst) {
    return d.host() instanceof Selector.Self
        ? Selector.Self.matches(src, dst)
        : d.host().matches(dst);
  }

  /**
   * The destination entry that lets {@code from} open {@code proto} to {@code to} on {@code port},
   * or null. {@code port} &lt; 0 means any port of the rule will do. ICMP echo follows Tailscale:
   * matching addresses are enough, whatever the ports and protocols.
   */
  Destination allows(Principal from, Principal to, int proto, int port) {
    if (!fromSource(from)) return null;
    boolean echo = proto == Protocols.ICMP || proto == Protocols.ICMPV6;
    if (!echo && !Protocols.covers(protos, proto)) return null;
    for (Destination d : dst) {
      if (!toHost(d, from, to)) continue;
      if (echo || port < 0 || !Protocols.hasPorts(proto) || d.allowsPort(port)) return d;
    }
    return null;
  }
}
