package dev.trellis.dataplane.dns;

import dev.trellis.proto.control.ControlMessage;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Record;
import org.xbill.DNS.Type;

/**
 * The node's resolver with 1,000 peers: a lookup answered from memory ({@link OverlayNames}), and a
 * whole lookup over UDP on loopback (the question encoded, sent, parsed, answered, the answer
 * parsed), one at a time per thread: its average time is the latency a program sees, and ops/s with
 * several threads the lookups per second. {@code scripts/bench-jmh ResolverBenchmark}.
 */
@State(Scope.Benchmark)
@BenchmarkMode({Mode.AverageTime, Mode.Throughput})
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class ResolverBenchmark {
  private OverlayNames names;
  private OverlayResolver resolver;
  private Name question;

  @Setup(Level.Trial)
  public void start() throws Exception {
    List<ControlMessage.NodeInfo> peers = new ArrayList<>();
    for (int i = 1; i <= 1000; i++) {
      peers.add(
          new ControlMessage.NodeInfo(
              i,
              "robot-" + i,
              "lab",
              "k" + i,
              List.of(
                  "100.64." + i / 256 + "." + i % 256, "fd7a:115c:a1e0::" + Integer.toHexString(i)),
              List.of(),
              true,
              null,
              Set.of(),
              null,
              false));
    }
    names =
        OverlayNames.of(
            new ControlMessage.DnsInfo("lab.internal", List.of(), List.of()), null, peers);
    resolver = OverlayResolver.start(new InetSocketAddress("127.0.0.1", 0), () -> names, List::of);
    question = Name.fromString("robot-777.lab.internal.");
  }

  @TearDown(Level.Trial)
  public void stop() {
    resolver.close();
  }

  /** One socket per benchmark thread. */
  @State(Scope.Thread)
  public static class Client {
    DatagramSocket socket;
    final byte[] in = new byte[512];

    @Setup(Level.Trial)
    public void open() throws Exception {
      socket = new DatagramSocket();
      socket.setSoTimeout(2000);
    }

    @TearDown(Level.Trial)
    public void close() {
      socket.close();
    }
  }

  @Benchmark
  public OverlayNames.Answer answerFromMemory() {
    return names.answer(question, Type.A);
  }

  @Benchmark
  public Message lookupOverUdp(Client client) throws Exception {
    byte[] wire = Message.newQuery(Record.newRecord(question, Type.A, DClass.IN)).toWire();
    client.socket.send(new DatagramPacket(wire, wire.length, resolver.address()));
    DatagramPacket p = new DatagramPacket(client.in, client.in.length);
    client.socket.receive(p);
    return new Message(java.util.Arrays.copyOf(client.in, p.getLength()));
  }
}
