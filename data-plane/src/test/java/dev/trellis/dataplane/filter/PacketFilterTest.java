package dev.trellis.dataplane.filter;

import static dev.trellis.dataplane.filter.TestPackets.ACK;
import static dev.trellis.dataplane.filter.TestPackets.DESTINATION_UNREACHABLE;
import static dev.trellis.dataplane.filter.TestPackets.ECHO_REPLY;
import static dev.trellis.dataplane.filter.TestPackets.ECHO_REQUEST;
import static dev.trellis.dataplane.filter.TestPackets.FIN;
import static dev.trellis.dataplane.filter.TestPackets.GRE;
import static dev.trellis.dataplane.filter.TestPackets.ICMP;
import static dev.trellis.dataplane.filter.TestPackets.ICMPV6;
import static dev.trellis.dataplane.filter.TestPackets.ICMPV6_ECHO_REPLY;
import static dev.trellis.dataplane.filter.TestPackets.ICMPV6_ECHO_REQUEST;
import static dev.trellis.dataplane.filter.TestPackets.NEIGHBOR_SOLICITATION;
import static dev.trellis.dataplane.filter.TestPackets.RST;
import static dev.trellis.dataplane.filter.TestPackets.SCTP;
import static dev.trellis.dataplane.filter.TestPackets.SYN;
import static dev.trellis.dataplane.filter.TestPackets.TCP;
import static dev.trellis.dataplane.filter.TestPackets.UDP;
import static dev.trellis.dataplane.filter.TestPackets.extension;
import static dev.trellis.dataplane.filter.TestPackets.fragment;
import static dev.trellis.dataplane.filter.TestPackets.icmp;
import static dev.trellis.dataplane.filter.TestPackets.ipv4;
import static dev.trellis.dataplane.filter.TestPackets.ipv6;
import static dev.trellis.dataplane.filter.TestPackets.sctp;
import static dev.trellis.dataplane.filter.TestPackets.tcp;
import static dev.trellis.dataplane.filter.TestPackets.tcp4;
import static dev.trellis.dataplane.filter.TestPackets.tcp6;
import static dev.trellis.dataplane.filter.TestPackets.udp;
import static dev.trellis.dataplane.filter.TestPackets.udp4;
import static dev.trellis.dataplane.filter.TestPackets.udp6;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.proto.control.ControlMessage.FilterRule;
import dev.trellis.proto.control.ControlMessage.PortRange;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The decision on inbound packets, on hand-built IPv4 and IPv6 packets. */
class PacketFilterTest {
  private static final String ME = "100.64.0.1";
  private static final String PEER = "100.64.0.2";
  private static final String OTHER = "100.64.0.3";
  private static final String ME6 = "fd7a:115c:a1e0::1";
  private static final String PEER6 = "fd7a:115c:a1e0::2";
  private static final String OTHER6 = "fd7a:115c:a1e0::3";

  private final AtomicLong clock = new AtomicLong(1_000_000_000L);
  private final FlowTable flows =
      new FlowTable(FlowTable.DEFAULT_CAPACITY, FlowTable.DEFAULT_IDLE, clock::get);
  private final NodeFilter node = new NodeFilter(flows);

  private static FilterRule rule(List<String> srcs, List<PortRange> ports, List<Integer> protos) {
    return new FilterRule(srcs, ports, protos);
  }

  private static PortRange port(int p) {
    return new PortRange(p, p);
  }

  private static PacketFilter compile(FilterRule... rules) {
    PacketFilter f = PacketFilter.compile(List.of(rules));
    assertEquals(List.of(), f.problems());
    return f;
  }

  private Verdict decide(PacketFilter filter, byte[] packet) {
    return filter.decide(packet, 0, packet.length, flows);
  }

  private void assertAccepts(PacketFilter filter, byte[] packet) {
    assertEquals(Verdict.ACCEPT, decide(filter, packet));
  }

  private void assertNoRule(PacketFilter filter, byte[] packet) {
    assertEquals(Verdict.NO_RULE, decide(filter, packet));
  }

  private void assertMalformed(PacketFilter filter, byte[] packet) {
    assertEquals(Verdict.MALFORMED, decide(filter, packet));
  }

  // ---- TCP ---------------------------------------------------------------------------------

  @Test
  void tcpSynNeedsARuleWithItsSourceAndPort() {
    PacketFilter f = compile(rule(List.of(PEER), List.of(port(22)), List.of()));
    assertAccepts(f, tcp4(PEER, ME, 40000, 22, SYN));
    assertNoRule(f, tcp4(OTHER, ME, 40000, 22, SYN));
    assertNoRule(f, tcp4(PEER, ME, 40000, 23, SYN));
    assertNoRule(f, tcp4(PEER, ME, 40000, 21, SYN));
  }

  @Test
  void portRangesAreInclusive() {
    PacketFilter f =
        compile(rule(List.of(PEER), List.of(port(22), new PortRange(8000, 8080)), List.of()));
    for (int p : new int[] {22, 8000, 8040, 8080}) {
      assertAccepts(f, tcp4(PEER, ME, 40000, p, SYN));
    }
    for (int p : new int[] {0, 21, 23, 7999, 8081, 65535}) {
      assertNoRule(f, tcp4(PEER, ME, 40000, p, SYN));
    }
    PacketFilter all = compile(rule(List.of(PEER), List.of(PortRange.ALL), List.of()));
    assertAccepts(all, tcp4(PEER, ME, 1, 0, SYN));
    assertAccepts(all, tcp4(PEER, ME, 1, 65535, SYN));
  }

  @Test
  void starIsEverySourceOfBothFamilies() {
    PacketFilter f = compile(rule(List.of("*"), List.of(port(443)), List.of()));
    assertAccepts(f, tcp4(OTHER, ME, 40000, 443, SYN));
    assertAccepts(f, tcp4("203.0.113.9", ME, 40000, 443, SYN));
    assertAccepts(f, tcp6(OTHER6, ME6, 40000, 443, SYN));
    assertNoRule(f, tcp6(OTHER6, ME6, 40000, 444, SYN));
  }

  @Test
  void cidrSourcesMatchTheirPrefixOnly() {
    PacketFilter f =
        compile(
            rule(
                List.of("100.64.0.0/24", "fd7a:115c:a1e0::/48", "fd00::100/120"),
                List.of(port(22)),
                List.of()));
    assertAccepts(f, tcp4("100.64.0.200", ME, 1000, 22, SYN));
    assertNoRule(f, tcp4("100.64.1.200", ME, 1000, 22, SYN));
    assertAccepts(f, tcp6("fd7a:115c:a1e0:ffff::9", ME6, 1000, 22, SYN));
    assertNoRule(f, tcp6("fd7a:115c:a1e1::9", ME6, 1000, 22, SYN));
    assertAccepts(f, tcp6("fd00::1ff", ME6, 1000, 22, SYN));
    assertNoRule(f, tcp6("fd00::200", ME6, 1000, 22, SYN));
    // Host bits in a rule's prefix are ignored; /0 is a whole family.
    PacketFilter loose = compile(rule(List.of("100.64.0.77/16", "::/0"), List.of(port(22)), null));
    assertAccepts(loose, tcp4("100.64.9.9", ME, 1000, 22, SYN));
    assertNoRule(loose, tcp4("100.65.0.1", ME, 1000, 22, SYN));
    assertAccepts(loose, tcp6("2001:db8::1", ME6, 1000, 22, SYN));
  }

  @Test
  void anIpv4SourceNeverMatchesAnIpv6PacketNorTheOtherWayRound() {
    PacketFilter f = compile(rule(List.of(PEER, "::ffff:100.64.0.3"), List.of(port(22)), null));
    assertNoRule(f, tcp6("::ffff:100.64.0.2", ME6, 1000, 22, SYN));
    assertNoRule(f, tcp4(OTHER, ME, 1000, 22, SYN));
    assertAccepts(f, tcp6("::ffff:100.64.0.3", ME6, 1000, 22, SYN));
  }

  @Test
  void tcpThatOpensNothingIsAcceptedEvenWithNoRules() {
    PacketFilter none = compile();
    for (int flags : new int[] {ACK, SYN | ACK, RST, RST | ACK, FIN | ACK, 0}) {
      assertAccepts(none, tcp4(OTHER, ME, 22, 40000, flags));
      assertAccepts(none, tcp6(OTHER6, ME6, 22, 40000, flags));
    }
    assertNoRule(none, tcp4(OTHER, ME, 40000, 22, SYN));
    assertNoRule(none, tcp4(OTHER, ME, 40000, 22, SYN | FIN));
  }

  @Test
  void protocolListLimitsWhichProtocolsTheRuleOpens() {
    PacketFilter f = compile(rule(List.of(PEER), List.of(port(53)), List.of(UDP)));
    assertNoRule(f, tcp4(PEER, ME, 40000, 53, SYN));
    assertAccepts(f, udp4(PEER, ME, 40000, 53));
    // Rules are scanned in order: a later rule can allow what an earlier one does not.
    PacketFilter two =
        compile(
            rule(List.of(PEER), List.of(port(53)), List.of(UDP)),
            rule(List.of(OTHER), List.of(port(53)), List.of(TCP)));
    assertNoRule(two, tcp4(PEER, ME, 40000, 53, SYN));
    assertAccepts(two, tcp4(OTHER, ME, 40000, 53, SYN));
    assertNoRule(two, udp4(OTHER, ME, 40000, 53));
  }

  // ---- UDP ---------------------------------------------------------------------------------

  @Test
  void udpIsAcceptedAsAReplyOnlyAfterThisNodeOpenedTheFlow() {
    PacketFilter f = compile(rule(List.of(PEER), List.of(port(22)), null));
    byte[] reply = udp4(OTHER, ME, 53, 40000);
    assertNoRule(f, reply);
    sent(udp4(ME, OTHER, 40000, 53));
    assertAccepts(f, reply);
    // Another remote port, local port or address is not that flow.
    assertNoRule(f, udp4(OTHER, ME, 54, 40000));
    assertNoRule(f, udp4(OTHER, ME, 53, 40001));
    assertNoRule(f, udp4(PEER, ME, 53, 40000));

    byte[] reply6 = udp6(OTHER6, ME6, 123, 50000);
    assertNoRule(f, reply6);
    sent(udp6(ME6, OTHER6, 50000, 123));
    assertAccepts(f, reply6);
    assertNoRule(f, udp6(PEER6, ME6, 123, 50000));
  }

  @Test
  void udpNotAReplyNeedsARuleForItsPort() {
    PacketFilter f = compile(rule(List.of(PEER), List.of(new PortRange(5000, 5010)), null));
    assertAccepts(f, udp4(PEER, ME, 1, 5005));
    assertNoRule(f, udp4(PEER, ME, 1, 5011));
    assertNoRule(f, udp4(OTHER, ME, 1, 5005));
  }

  @Test
  void udpFlowsExpireWhenIdle() {
    PacketFilter f = compile();
    byte[] out = udp4(ME, OTHER, 40000, 53);
    byte[] reply = udp4(OTHER, ME, 53, 40000);
    sent(out);
    advance(FlowTable.DEFAULT_IDLE.minusSeconds(1));
    assertAccepts(f, reply);
    advance(Duration.ofSeconds(2));
    assertNoRule(f, reply);
    // Sending again opens it again, and keeps it open while used.
    sent(out);
    advance(Duration.ofSeconds(100));
    sent(out);
    advance(Duration.ofSeconds(100));
    assertAccepts(f, reply);
  }

  @Test
  void outboundPacketsThatAreNotUdpOpenNoFlow() {
    PacketFilter f = compile();
    byte[] tcpOut = tcp4(ME, OTHER, 40000, 53, SYN);
    sent(tcpOut);
    byte[] junk = {0x45, 0, 0};
    sent(junk);
    assertEquals(0, flows.size());
    assertNoRule(f, udp4(OTHER, ME, 53, 40000));
  }

  // ---- ICMP --------------------------------------------------------------------------------

  @Test
  void echoRequestsPassFromAnySourceOfAnyRuleWhateverItsPortsAndProtocols() {
    PacketFilter f =
        compile(
            rule(List.of(PEER), List.of(port(22)), List.of(TCP)),
            rule(List.of(PEER6), List.of(), List.of(GRE)));
    assertAccepts(f, ipv4(PEER, ME, ICMP, icmp(ECHO_REQUEST)));
    assertNoRule(f, ipv4(OTHER, ME, ICMP, icmp(ECHO_REQUEST)));
    assertAccepts(f, ipv6(PEER6, ME6, ICMPV6, icmp(ICMPV6_ECHO_REQUEST)));
    assertNoRule(f, ipv6(OTHER6, ME6, ICMPV6, icmp(ICMPV6_ECHO_REQUEST)));
  }

  @Test
  void everyOtherIcmpMessagePasses() {
    PacketFilter none = compile();
    assertNoRule(none, ipv4(OTHER, ME, ICMP, icmp(ECHO_REQUEST)));
    assertAccepts(none, ipv4(OTHER, ME, ICMP, icmp(ECHO_REPLY)));
    assertAccepts(none, ipv4(OTHER, ME, ICMP, icmp(DESTINATION_UNREACHABLE)));
    assertNoRule(none, ipv6(OTHER6, ME6, ICMPV6, icmp(ICMPV6_ECHO_REQUEST)));
    assertAccepts(none, ipv6(OTHER6, ME6, ICMPV6, icmp(ICMPV6_ECHO_REPLY)));
    assertAccepts(none, ipv6(OTHER6, ME6, ICMPV6, icmp(NEIGHBOR_SOLICITATION)));
    assertAccepts(none, ipv6(OTHER6, ME6, ICMPV6, icmp(1))); // destination unreachable
  }

  // ---- other protocols ---------------------------------------------------------------------

  @Test
  void otherProtocolsNeedARuleListingThemAndTheirSource() {
    byte[] gre = ipv4(PEER, ME, GRE, new byte[8]);
    assertNoRule(compile(rule(List.of("*"), List.of(PortRange.ALL), List.of())), gre);
    PacketFilter f = compile(rule(List.of(PEER, PEER6), List.of(), List.of(GRE)));
    assertAccepts(f, gre);
    assertAccepts(f, ipv6(PEER6, ME6, GRE, new byte[8]));
    assertNoRule(f, ipv4(OTHER, ME, GRE, new byte[8]));
    assertNoRule(f, ipv4(PEER, ME, 50, new byte[8])); // ESP is not GRE
    assertNoRule(f, tcp4(PEER, ME, 1, 22, SYN)); // the rule opens no TCP
  }

  @Test
  void sctpNeedsTheProtocolListedAndItsPort() {
    byte[] sctp = ipv4(PEER, ME, SCTP, sctp(5000, 38412));
    assertNoRule(compile(rule(List.of(PEER), List.of(PortRange.ALL), List.of())), sctp);
    PacketFilter f = compile(rule(List.of(PEER), List.of(port(38412)), List.of(SCTP)));
    assertAccepts(f, sctp);
    assertNoRule(f, ipv4(PEER, ME, SCTP, sctp(5000, 38413)));
  }

  // ---- policies ----------------------------------------------------------------------------

  @Test
  void noPolicyAcceptsEverythingEvenGarbage() {
    assertNull(node.setRules(null));
    assertTrue(accept(tcp4(OTHER, ME, 1, 22, SYN)));
    assertTrue(accept(ipv4(OTHER, ME, GRE, new byte[4])));
    assertTrue(accept(new byte[] {1, 2, 3}));
    assertEquals(0, node.dropped());
  }

  @Test
  void anEmptyPolicyAcceptsOnlyReplies() {
    assertEquals(0, node.setRules(List.of()).ruleCount());
    assertFalse(accept(tcp4(PEER, ME, 40000, 22, SYN)));
    assertTrue(accept(tcp4(PEER, ME, 22, 40000, SYN | ACK)));
    assertFalse(accept(udp4(PEER, ME, 53, 40000)));
    sent(udp4(ME, PEER, 40000, 53));
    assertTrue(accept(udp4(PEER, ME, 53, 40000)));
    assertFalse(accept(ipv4(PEER, ME, ICMP, icmp(ECHO_REQUEST))));
    assertTrue(accept(ipv4(PEER, ME, ICMP, icmp(ECHO_REPLY))));
    assertFalse(accept(ipv4(PEER, ME, GRE, new byte[8])));
  }

  @Test
  void aNewPolicyReplacesTheOldOneAndKeepsFlowsAndCounts() {
    node.setRules(List.of(rule(List.of(PEER), List.of(port(22)), null)));
    sent(udp4(ME, PEER, 40000, 53));
    assertTrue(accept(tcp4(PEER, ME, 1, 22, SYN)));
    assertFalse(accept(tcp4(PEER, ME, 1, 80, SYN)));
    PacketFilter second = node.setRules(List.of(rule(List.of(PEER), List.of(port(80)), null)));
    assertSame(second, node.policy());
    assertFalse(accept(tcp4(PEER, ME, 1, 22, SYN)));
    assertTrue(accept(tcp4(PEER, ME, 1, 80, SYN)));
    assertTrue(accept(udp4(PEER, ME, 53, 40000)), "a flow opened under the old policy");
    assertEquals(2, node.dropped());
  }

  @Test
  void unusablePartsOfARuleAreLeftOutAndTheRestApplies() {
    PacketFilter f =
        PacketFilter.compile(
            List.of(
                rule(
                    List.of("robot-2", "100.64.0.2", "10.0.0.1/33"),
                    List.of(new PortRange(10, 5), port(22), new PortRange(1, 70000)),
                    List.of(300, TCP)),
                new FilterRule(null, null, null)));
    assertEquals(5, f.problems().size(), f.problems().toString());
    assertEquals(2, f.ruleCount());
    assertAccepts(f, tcp4(PEER, ME, 1, 22, SYN));
    assertNoRule(f, tcp4(PEER, ME, 1, 7, SYN));
    assertNoRule(f, udp4(PEER, ME, 1, 22));
  }

  // ---- malformed, fragments, extension headers ----------------------------------------------

  @Test
  void malformedAndTruncatedPacketsAreDropped() {
    PacketFilter f = compile(rule(List.of("*"), List.of(PortRange.ALL), null));
    byte[] syn = tcp4(PEER, ME, 1, 22, SYN);
    assertMalformed(f, new byte[0]);
    assertMalformed(f, Arrays.copyOf(syn, 19)); // shorter than an IPv4 header
    assertEquals(Verdict.MALFORMED, f.decide(syn, 0, syn.length - 1, flows)); // total > length
    byte[] badVersion = syn.clone();
    badVersion[0] = 0x55;
    assertMalformed(f, badVersion);
    byte[] shortIhl = syn.clone();
    shortIhl[0] = 0x44;
    assertMalformed(f, shortIhl);
    byte[] longIhl = syn.clone();
    longIhl[0] = 0x4f; // 60-byte header in a 40-byte packet
    assertMalformed(f, longIhl);
    assertMalformed(f, ipv4(PEER, ME, TCP, Arrays.copyOf(tcp(1, 22, ACK), 19)));
    assertMalformed(f, ipv4(PEER, ME, UDP, Arrays.copyOf(udp(1, 53, 0), 7)));
    assertMalformed(f, ipv4(PEER, ME, SCTP, new byte[11]));
    assertMalformed(f, ipv4(PEER, ME, ICMP, new byte[7]));
    byte[] v6 = tcp6(PEER6, ME6, 1, 22, SYN);
    assertMalformed(f, Arrays.copyOf(v6, 39));
    assertEquals(Verdict.MALFORMED, f.decide(v6, 0, v6.length - 1, flows)); // payload > length
    assertMalformed(f, ipv6(PEER6, ME6, ICMPV6, new byte[4]));
    // An extension header that runs past the packet.
    byte[] ext = ipv6(PEER6, ME6, 0, extension(TCP, new byte[0]));
    ext[41] = 1; // 16 bytes claimed, 8 present
    assertMalformed(f, ext);
  }

  @Test
  void paddingAfterThePacketIsIgnoredAndAnOffsetIsHonoured() {
    PacketFilter f = compile(rule(List.of(PEER), List.of(port(22)), null));
    byte[] syn = tcp4(PEER, ME, 1, 22, SYN);
    byte[] framed = new byte[syn.length + 30];
    System.arraycopy(syn, 0, framed, 10, syn.length);
    assertEquals(Verdict.ACCEPT, f.decide(framed, 10, syn.length + 20, flows));
    framed[10 + 12 + 3] = 3; // source 100.64.0.3
    assertEquals(Verdict.NO_RULE, f.decide(framed, 10, syn.length, flows));
  }

  @Test
  void ipv4OptionsAndFragmentsAreHandled() {
    PacketFilter f = compile(rule(List.of(PEER), List.of(port(22)), null));
    // A 24-byte header (one option word) before the TCP header.
    byte[] plain = tcp4(OTHER, ME, 1, 22, SYN);
    byte[] options = new byte[plain.length + 4];
    System.arraycopy(plain, 0, options, 0, 20);
    System.arraycopy(plain, 20, options, 24, plain.length - 20);
    options[0] = 0x46;
    options[3] = (byte) options.length;
    assertNoRule(f, options);
    options[15] = 2; // source 100.64.0.2
    assertAccepts(f, options);

    // The first fragment is judged on its TCP header; later ones pass (nothing to reassemble with).
    byte[] first = tcp4(OTHER, ME, 1, 22, SYN);
    first[6] = 0x20; // more fragments
    assertNoRule(f, first);
    byte[] later = ipv4(OTHER, ME, TCP, new byte[16]);
    later[7] = 3; // offset 24 bytes
    assertAccepts(f, later);
    byte[] overlapping = later.clone();
    overlapping[7] = 1; // offset 8 bytes: would rewrite the first fragment's TCP flags
    assertMalformed(f, overlapping);
    byte[] udpLater = ipv4(OTHER, ME, UDP, new byte[16]);
    udpLater[7] = 1;
    assertAccepts(f, udpLater);
  }

  @Test
  void ipv6ExtensionHeadersAreWalked() {
    PacketFilter f = compile(rule(List.of(PEER6), List.of(port(22)), null));
    byte[] viaHopByHop =
        ipv6(PEER6, ME6, 0, extension(60, extension(43, extension(TCP, tcp(1, 22, SYN)))));
    assertAccepts(f, viaHopByHop);
    assertNoRule(f, ipv6(OTHER6, ME6, 0, extension(TCP, tcp(1, 22, SYN))));
    assertAccepts(f, ipv6(OTHER6, ME6, 60, extension(TCP, tcp(22, 1, ACK))));
    assertNoRule(f, ipv6(OTHER6, ME6, 60, extension(ICMPV6, icmp(ICMPV6_ECHO_REQUEST))));

    // First fragment: judged on its transport header; later fragments pass.
    assertNoRule(f, ipv6(OTHER6, ME6, 44, fragment(TCP, 0, true, tcp(1, 22, SYN))));
    assertAccepts(f, ipv6(PEER6, ME6, 44, fragment(TCP, 0, true, tcp(1, 22, SYN))));
    assertAccepts(f, ipv6(OTHER6, ME6, 44, fragment(TCP, 4, false, new byte[16])));
    assertMalformed(f, ipv6(OTHER6, ME6, 44, fragment(TCP, 1, false, new byte[16])));

    // As many extension headers as the filter walks, then one more.
    byte[] chain = tcp(22, 1, ACK);
    for (int i = 0; i < IpPacket.MAX_EXTENSION_HEADERS; i++) {
      chain = extension(i == 0 ? TCP : 60, chain);
    }
    assertAccepts(f, ipv6(OTHER6, ME6, 60, chain));
    assertMalformed(f, ipv6(OTHER6, ME6, 60, extension(60, chain)));
  }

  // ---- counters ----------------------------------------------------------------------------

  @Test
  void dropsAreCountedByReason() {
    node.setRules(List.of(rule(List.of(PEER), List.of(port(22)), null)));
    assertFalse(accept(tcp4(OTHER, ME, 1, 22, SYN)));
    assertFalse(accept(udp4(OTHER, ME, 1, 22)));
    assertFalse(accept(new byte[] {0x45}));
    assertTrue(accept(tcp4(PEER, ME, 1, 22, SYN)));
    assertEquals(3, node.dropped());
    assertEquals(Map.of("no-rule", 2L, "malformed", 1L), node.droppedByReason());
  }

  /** This node sent {@code packet} to a peer. */
  private void sent(byte[] packet) {
    node.outbound(packet, 0, packet.length);
  }

  private boolean accept(byte[] packet) {
    return node.accept(packet, 0, packet.length);
  }

  private void advance(Duration d) {
    clock.addAndGet(TimeUnit.NANOSECONDS.convert(d));
  }
}
