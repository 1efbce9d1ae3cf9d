package dev.trellis.control.policy;

import dev.trellis.control.node.NodeRecord;
import dev.trellis.proto.control.ControlMessage.FilterRule;
import dev.trellis.proto.control.ControlMessage.PortRange;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * A policy applied to the live nodes: which peers each node may see (a node sees another if either
 * may open a connection to the other, as in Headscale) and the packet filter rules each node
 * enforces on what comes in. Built in one pass over rules × nodes with bit sets, so a policy change
 * or a join costs milliseconds at a thousand nodes, not a rebuild per pair.
 *
 * <p>Immutable once built; the network map builds one on its own thread.
 */
public final class PolicyView {
  private final Map<Long, BitSet> peers;
  private final Map<Long, List<FilterRule>> filters;

  private PolicyView(Map<Long, BitSet> peers, Map<Long, List<FilterRule>> filters) {
    this.peers = peers;
    this.filters = filters;
  }

  /** The ids of the nodes {@code nodeId} may see (bit = node id); empty for an unknown node. */
  public BitSet peers(long nodeId) {
    BitSet b = peers.get(nodeId);
    return b == null ? new BitSet() : b;
  }

  /** The rules {@code nodeId} enforces on inbound packets. */
  public List<FilterRule> filter(long nodeId) {
    return filters.getOrDefault(nodeId, List.of());
  }

  public static PolicyView of(Policy policy, Collection<NodeRecord> live) {
    // By id, so the same nodes always give the same rules in the same order (sessions are sent a
    // filter only when it changes).
    List<NodeRecord> nodes = new ArrayList<>(live);
    nodes.sort(Comparator.comparingLong(NodeRecord::id));
    int n = nodes.size();
    Principal[] principals = new Principal[n];
    Map<String, BitSet> untaggedByUser = new HashMap<>();
    for (int i = 0; i < n; i++) {
      NodeRecord r = nodes.get(i);
      principals[i] = Principal.node(r.hostname(), r.user(), r.tags(), r.ipv4(), r.ipv6());
      if (!principals[i].tagged() && r.user() != null) {
        untaggedByUser.computeIfAbsent(r.user(), u -> new BitSet()).set(i);
      }
    }
    BitSet[] sees = new BitSet[n];
    List<List<FilterRule>> rules = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      sees[i] = new BitSet();
      rules.add(new ArrayList<>());
    }
    for (Acl acl : policy.acls()) {
      BitSet src = new BitSet();
      for (int i = 0; i < n; i++) {
        if (acl.fromSource(principals[i])) src.set(i);
      }
      List<String> srcTexts = sourceTexts(acl, nodes, principals);
      List<Integer> protos = new ArrayList<>(new TreeSet<>(acl.protos()));
      // Ports each destination node gets from this rule (non-self entries), by node position.
      Map<Integer, LinkedHashSet<PortRange>> ports = new HashMap<>();
      Map<Integer, LinkedHashSet<PortRange>> selfPorts = new HashMap<>();
      BitSet dst = new BitSet();
      for (Acl.Destination d : acl.dst()) {
        if (d.host() instanceof Selector.Self) {
          for (int i = src.nextSetBit(0); i >= 0; i = src.nextSetBit(i + 1)) {
            if (principals[i].tagged()) continue;
            BitSet same = untaggedByUser.get(nodes.get(i).user());
            if (same == null) continue;
            sees[i].or(same);
            for (int j = same.nextSetBit(0); j >= 0; j = same.nextSetBit(j + 1)) {
              sees[j].set(i);
              selfPorts.computeIfAbsent(j, k -> new LinkedHashSet<>()).addAll(d.ports());
            }
          }
          continue;
        }
        for (int j = 0; j < n; j++) {
          if (d.host().matches(principals[j])) {
            dst.set(j);
            ports.computeIfAbsent(j, k -> new LinkedHashSet<>()).addAll(d.ports());
          }
        }
      }
      for (int i = src.nextSetBit(0); i >= 0; i = src.nextSetBit(i + 1)) sees[i].or(dst);
      for (int j = dst.nextSetBit(0); j >= 0; j = dst.nextSetBit(j + 1)) sees[j].or(src);
      for (var e : ports.entrySet()) {
        rules.get(e.getKey()).add(new FilterRule(srcTexts, List.copyOf(e.getValue()), protos));
      }
      for (var e : selfPorts.entrySet()) {
        int j = e.getKey();
        List<String> same = new ArrayList<>();
        BitSet owners = untaggedByUser.get(nodes.get(j).user());
        for (int i = owners.nextSetBit(0); i >= 0; i = owners.nextSetBit(i + 1)) {
          if (src.get(i)) addresses(nodes.get(i), same);
        }
        if (!same.isEmpty()) {
          rules.get(j).add(new FilterRule(List.copyOf(same), List.copyOf(e.getValue()), protos));
        }
      }
    }
    Map<Long, BitSet> peers = new HashMap<>();
    Map<Long, List<FilterRule>> filters = new HashMap<>();
    for (int i = 0; i < n; i++) {
      BitSet ids = new BitSet();
      for (int j = sees[i].nextSetBit(0); j >= 0; j = sees[i].nextSetBit(j + 1)) {
        if (j != i) ids.set(Math.toIntExact(nodes.get(j).id()));
      }
      peers.put(nodes.get(i).id(), ids);
      filters.put(nodes.get(i).id(), List.copyOf(rules.get(i)));
    }
    return new PolicyView(peers, filters);
  }

  /**
   * Who a rule's packets may come from, as the filter matches them: "*", the prefixes it names, and
   * the addresses of the nodes its users, groups, tags and autogroups stand for.
   */
  private static List<String> sourceTexts(Acl acl, List<NodeRecord> nodes, Principal[] principals) {
    Set<String> out = new LinkedHashSet<>();
    for (Selector s : acl.src()) {
      switch (s) {
        case Selector.Any a -> {
          return List.of("*");
        }
        case Selector.Prefix p -> out.add(p.cidr().text());
        default -> {
          for (int i = 0; i < principals.length; i++) {
            if (s.matches(principals[i])) {
              List<String> a = new ArrayList<>();
              addresses(nodes.get(i), a);
              out.addAll(a);
            }
          }
        }
      }
    }
    return List.copyOf(out);
  }

  private static void addresses(NodeRecord r, List<String> out) {
    if (r.ipv4() != null) out.add(r.ipv4());
    if (r.ipv6() != null) out.add(r.ipv6());
  }
}
