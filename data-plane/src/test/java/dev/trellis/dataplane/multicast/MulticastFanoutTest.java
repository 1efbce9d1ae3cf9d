package dev.trellis.dataplane.multicast;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.dataplane.filter.NodeFilter;
import dev.trellis.dataplane.filter.TestPackets;
import dev.trellis.dataplane.wireguard.MulticastRouter;
import dev.trellis.proto.control.ControlMessage.FilterRule;
import dev.trellis.proto.control.ControlMessage.MulticastInfo;
import dev.trellis.proto.control.ControlMessage.NodeInfo;
import dev.trellis.proto.control.ControlMessage.PortRange;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * Who gets a node's multicast: the fan-out on the sender, then each receiver's own decision (its
 * membership, then its packet filter with the access policy), on hand-built IPv4 and IPv6 packets.
 */
class MulticastFanoutTest {
  private static final String A = "100.64.0.1";
  private static final String A6 = "fd7a:115c:a1e0::1";
  private static final String DDS_GROUP = "239.255.0.1";
  private static final String DDS_GROUP6 = "ff02::ffff:239.255.0.1";
  private static final int SPDP = 7400;
  private static final MulticastInfo LIMITS = new MulticastInfo(100, 100_000);

  private final AtomicLong clock = new AtomicLong(1_000_000_000L);

  private static NodeInfo node(int id, String team, boolean member) {
    byte[] key = new byte[32];
    key[0] = (byte) id;
    return new NodeInfo(
        id,
        "robot-" + id,
        team,
        Base64.getEncoder().encodeToString(key),
        List.of("100.64.0." + id + "/32", "fd7a:115c:a1e0::" + id + "/128"),
        List.of(),
        true,
        null,
        Set.of(),
        null,
        false,
        null,
        member);
  }

  private MulticastFanout fanout(boolean member, NodeInfo self, List<NodeInfo> peers) {
    MulticastFanout f = new MulticastFanout(clock::get);
    f.update(member, LIMITS, self, peers);
    return f;
  }

  private static Set<Integer> ids(byte[][] keys) {
    return Arrays.stream(keys).map(k -> (int) k[0]).collect(Collectors.toSet());
  }

  private static byte[] spdp4(String src) {
    return TestPackets.udp4(src, DDS_GROUP, 40000, SPDP);
  }

  @Test
  void aDatagramGoesToEveryPeerThatTakesPartAndTheirPolicyDecides() {
    NodeInfo a = node(1, "team-a", true);
    // 2 and 3: team A members; 4: team B member; 5: team A, not a member.
    List<NodeInfo> peers =
        List.of(
            node(2, "team-a", true),
            node(3, "team-a", true),
            node(4, "team-b", true),
            node(5, "team-a", false));
    MulticastFanout sender = fanout(true, a, peers);
    byte[] datagram = spdp4(A);
    assertTrue(MulticastRouter.isMulticast(datagram, 0, datagram.length));
    assertEquals(Set.of(2, 3, 4), ids(sender.targets(datagram, 0, datagram.length)));

    // Each receiver: a member, with team A's policy (A may send UDP 7400-7500 to team A only).
    FilterRule teamA =
        new FilterRule(List.of("100.64.0.1/32"), List.of(new PortRange(7400, 7500)), List.of(17));
    NodeFilter teamAFilter = new NodeFilter();
    teamAFilter.setRules(List.of(teamA));
    NodeFilter teamBFilter = new NodeFilter();
    teamBFilter.setRules(
        List.of(new FilterRule(List.of("100.64.0.4/32"), List.of(new PortRange(0, 65535)), null)));
    MulticastFanout receiver2 = fanout(true, peers.get(0), List.of(a));
    MulticastFanout receiver4 = fanout(true, peers.get(2), List.of(a));
    assertTrue(receiver2.accepts(datagram, 0, datagram.length));
    assertTrue(teamAFilter.accept(datagram, 0, datagram.length), "team A takes SPDP from A");
    assertTrue(receiver4.accepts(datagram, 0, datagram.length));
    assertFalse(teamBFilter.accept(datagram, 0, datagram.length), "team B's policy refuses it");
    byte[] otherPort = TestPackets.udp4(A, DDS_GROUP, 40000, 9999);
    assertFalse(teamAFilter.accept(otherPort, 0, otherPort.length), "a port outside the rule");
    // A node that does not take part refuses multicast before any policy.
    MulticastFanout notMember = fanout(false, peers.get(3), List.of(a));
    assertFalse(notMember.accepts(datagram, 0, datagram.length));
    assertEquals(1, notMember.counters().refused.sum());
  }

  @Test
  void ipv6GroupsToo() {
    MulticastFanout sender = fanout(true, node(1, "lab", true), List.of(node(2, "lab", true)));
    byte[] datagram = TestPackets.udp6(A6, DDS_GROUP6, 40000, SPDP);
    assertTrue(MulticastRouter.isMulticast(datagram, 0, datagram.length));
    assertEquals(Set.of(2), ids(sender.targets(datagram, 0, datagram.length)));
    // Interface-local scope (ff01::) never leaves the host.
    byte[] local = TestPackets.udp6(A6, "ff01::1", 40000, SPDP);
    assertEquals(0, sender.targets(local, 0, local.length).length);
    assertEquals(1, sender.counters().droppedScope.sum());
  }

  @Test
  void nothingLoopsAndOnlyUdpWithATtlLeaves() {
    MulticastFanout sender = fanout(true, node(1, "lab", true), List.of(node(2, "lab", true)));
    // Came in from peer 2 and is sent out again: not from this node, so dropped.
    byte[] forwarded = spdp4("100.64.0.2");
    assertEquals(0, sender.targets(forwarded, 0, forwarded.length).length);
    assertEquals(1, sender.counters().droppedLoop.sum());
    byte[] igmp = TestPackets.ipv4(A, "224.0.0.22", 2, new byte[8]);
    assertEquals(0, sender.targets(igmp, 0, igmp.length).length, "IGMP stays on the host");
    byte[] ttl0 = spdp4(A);
    ttl0[8] = 0;
    assertEquals(0, sender.targets(ttl0, 0, ttl0.length).length);
    byte[] ttl1 = spdp4(A);
    ttl1[8] = 1;
    assertEquals(1, sender.targets(ttl1, 0, ttl1.length).length, "TTL 1 reaches the link");
    assertEquals(1, sender.counters().sent.sum());
  }

  @Test
  void theRateLimitCutsAFloodAndRefills() {
    MulticastFanout sender = fanout(true, node(1, "lab", true), List.of(node(2, "lab", true)));
    byte[] datagram = spdp4(A);
    int passed = 0;
    for (int i = 0; i < 1000; i++) {
      if (sender.targets(datagram, 0, datagram.length).length > 0) passed++;
    }
    assertEquals(LIMITS.packetsPerSecond(), passed, "a second's worth passes");
    assertEquals(1000 - passed, sender.counters().droppedRate.sum());
    clock.addAndGet(100_000_000L); // 0.1 s: 10 more
    passed = 0;
    for (int i = 0; i < 100; i++) {
      if (sender.targets(datagram, 0, datagram.length).length > 0) passed++;
    }
    assertEquals(10, passed);
    // The byte budget binds too: 100,000 bytes/s, 10 datagrams of 20,000 bytes in a fresh second.
    clock.addAndGet(10_000_000_000L);
    byte[] large = TestPackets.ipv4(A, DDS_GROUP, 17, TestPackets.udp(1, SPDP, 20_000 - 28));
    passed = 0;
    for (int i = 0; i < 10; i++) {
      if (sender.targets(large, 0, large.length).length > 0) passed++;
    }
    assertEquals(5, passed);
  }

  @Test
  void offWhenTheNetworkOrTheNodeSaysSo() {
    MulticastFanout f = new MulticastFanout(clock::get);
    f.update(true, null, node(1, "lab", true), List.of(node(2, "lab", true)));
    byte[] datagram = spdp4(A);
    assertFalse(f.member(), "the network has multicast off");
    assertEquals(0, f.targets(datagram, 0, datagram.length).length);
    f.update(true, LIMITS, node(1, "lab", true), List.of(node(2, "lab", true)));
    assertTrue(f.member());
    assertArrayEquals(
        Base64.getDecoder().decode(node(2, "lab", true).nodeKey()),
        f.targets(datagram, 0, datagram.length)[0]);
    f.update(false, LIMITS, node(1, "lab", true), List.of(node(2, "lab", true)));
    assertEquals(0, f.targets(datagram, 0, datagram.length).length);
  }
}
