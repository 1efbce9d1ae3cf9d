package dev.trellis.dataplane.filter;

import dev.trellis.proto.control.ControlMessage.FilterRule;
import dev.trellis.proto.control.ControlMessage.PortRange;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * What the inbound filter costs per packet ({@link NodeFilter#accept}, as the device calls it) with
 * a 100-rule policy, and with none. Rule {@code i} allows TCP/UDP port 22 and port 8000+i from
 * 100.64.1.i and fd7a:115c:a1e0:1::i, so a SYN to port 22 passes every rule's protocol and port
 * test and fails on the source until its own rule: from the last rule's source it is the worst case
 * that is accepted; from a source of no rule it is refused after all 100.
 *
 * <ul>
 *   <li>{@code tcpSynLastRule}/{@code tcpSynLastRuleIpv6}: a SYN matched by the 100th rule.
 *   <li>{@code tcpSynRefused}: a SYN no rule allows (scanned to the end, counted).
 *   <li>{@code tcpNonSyn}: an ACK of an existing connection (no rule scanned).
 *   <li>{@code udpReply}: a reply to a flow this node opened (a flow-table hit).
 *   <li>{@code noPolicy}: the same SYN with no policy in force.
 *   <li>{@code outboundUdp}: the outbound path's recording of a known UDP flow.
 * </ul>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class PacketFilterBenchmark {
  private static final int RULES = 100;
  private static final String ME = "100.64.0.1";
  private static final String ME6 = "fd7a:115c:a1e0::1";

  private NodeFilter policy;
  private NodeFilter none;
  private byte[] synLast;
  private byte[] synLast6;
  private byte[] synRefused;
  private byte[] ack;
  private byte[] udpReply;
  private byte[] udpOut;

  @Setup(Level.Trial)
  public void setUp() {
    List<FilterRule> rules = new ArrayList<>();
    for (int i = 0; i < RULES; i++) {
      rules.add(
          new FilterRule(
              List.of("100.64.1." + i, "fd7a:115c:a1e0:1::" + Integer.toHexString(i)),
              List.of(new PortRange(22, 22), new PortRange(8000 + i, 8000 + i)),
              List.of()));
    }
    policy = new NodeFilter();
    policy.setRules(rules);
    none = new NodeFilter();
    String last = "100.64.1." + (RULES - 1);
    synLast = TestPackets.tcp4(last, ME, 40000, 22, TestPackets.SYN);
    synLast6 =
        TestPackets.tcp6(
            "fd7a:115c:a1e0:1::" + Integer.toHexString(RULES - 1), ME6, 40000, 22, TestPackets.SYN);
    synRefused = TestPackets.tcp4("100.64.2.1", ME, 40000, 22, TestPackets.SYN);
    ack = TestPackets.tcp4("100.64.2.1", ME, 40000, 22, TestPackets.ACK);
    udpOut = TestPackets.udp4(ME, "100.64.2.1", 40000, 53);
    udpReply = TestPackets.udp4("100.64.2.1", ME, 53, 40000);
    policy.outbound(udpOut, 0, udpOut.length);
    check(policy, synLast, true);
    check(policy, synLast6, true);
    check(policy, synRefused, false);
    check(policy, ack, true);
    check(policy, udpReply, true);
    check(none, synRefused, true);
  }

  private static void check(NodeFilter filter, byte[] packet, boolean accepted) {
    if (filter.accept(packet, 0, packet.length) != accepted) {
      throw new IllegalStateException("the benchmark's policy does not decide as intended");
    }
  }

  @Benchmark
  public boolean tcpSynLastRule() {
    return policy.accept(synLast, 0, synLast.length);
  }

  @Benchmark
  public boolean tcpSynLastRuleIpv6() {
    return policy.accept(synLast6, 0, synLast6.length);
  }

  @Benchmark
  public boolean tcpSynRefused() {
    return policy.accept(synRefused, 0, synRefused.length);
  }

  @Benchmark
  public boolean tcpNonSyn() {
    return policy.accept(ack, 0, ack.length);
  }

  @Benchmark
  public boolean udpReply() {
    return policy.accept(udpReply, 0, udpReply.length);
  }

  @Benchmark
  public boolean noPolicy() {
    return none.accept(synRefused, 0, synRefused.length);
  }

  @Benchmark
  public void outboundUdp() {
    policy.outbound(udpOut, 0, udpOut.length);
  }
}
