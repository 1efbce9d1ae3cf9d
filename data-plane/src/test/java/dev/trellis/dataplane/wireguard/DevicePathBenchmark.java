package dev.trellis.dataplane.wireguard;

import dev.trellis.proto.wireguard.ChaChaPoly;
import dev.trellis.proto.wireguard.Keypair;
import dev.trellis.proto.wireguard.Message;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * The device's per-packet crypto work without the sockets: {@link #seal} is {@link
 * PacketSealer#sealAndSend} up to (not including) the timers and the UDP send — counter, padding,
 * header, AEAD into the wire buffer; {@link #open} is {@code InboundPath.openTransport}'s header
 * parse, AEAD open and replay-window update. Lives in the device's package to reach {@link
 * PacketSealer#paddedLength}; {@code sealAndSend} itself always sends, so it is not called.
 *
 * <p>{@code open} decrypts the same datagram every time and feeds the replay window an increasing
 * counter, which costs the same as a real in-order stream.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class DevicePathBenchmark {
  @Param({"1420"})
  public int size;

  @Param({"1420"})
  public int mtu;

  private Keypair sending;
  private Keypair receiving;
  private final ChaChaPoly sealAead = new ChaChaPoly();
  private final ChaChaPoly openAead = new ChaChaPoly();
  private byte[] packet;
  private final byte[] padded = new byte[Device.MAX_PACKET + Message.PADDING_MULTIPLE];
  private final byte[] wire =
      new byte[Device.MAX_PACKET + Message.TRANSPORT_MIN_LENGTH + Message.PADDING_MULTIPLE];
  private final byte[] plain = new byte[Device.MAX_PACKET + Message.PADDING_MULTIPLE];
  private byte[] datagram;
  private int datagramLength;
  private long receiveCounter;

  @Setup(Level.Trial)
  public void setUp() {
    SecureRandom random = new SecureRandom();
    byte[] k1 = new byte[32];
    byte[] k2 = new byte[32];
    random.nextBytes(k1);
    random.nextBytes(k2);
    sending = new Keypair(k1, k2, true, 1, 2, System.nanoTime());
    receiving = new Keypair(k2, k1, false, 2, 1, System.nanoTime());
    packet = new byte[size];
    random.nextBytes(packet);
    datagramLength = sealInto(wire);
    datagram = Arrays.copyOf(wire, datagramLength);
  }

  private int sealInto(byte[] out) {
    long counter = sending.nextSendCounter();
    int paddedLength = PacketSealer.paddedLength(size, mtu);
    System.arraycopy(packet, 0, padded, 0, size);
    Arrays.fill(padded, size, paddedLength, (byte) 0);
    Message.writeTransportHeader(out, 0, sending.remoteIndex(), counter);
    int sealed =
        sealAead.seal(
            sending.sendKey(),
            counter,
            padded,
            0,
            paddedLength,
            null,
            out,
            Message.TRANSPORT_HEADER_LENGTH);
    return Message.TRANSPORT_HEADER_LENGTH + sealed;
  }

  @Benchmark
  public int seal() {
    return sealInto(wire);
  }

  @Benchmark
  public int open() {
    int receiver = Message.readInt(datagram, Message.TRANSPORT_OFFSET_RECEIVER);
    long counter = Message.readLong(datagram, Message.TRANSPORT_OFFSET_COUNTER);
    if (receiver != receiving.localIndex()) {
      throw new IllegalStateException("wrong receiver index");
    }
    int n =
        openAead.open(
            receiving.receiveKey(),
            counter,
            datagram,
            Message.TRANSPORT_HEADER_LENGTH,
            datagramLength - Message.TRANSPORT_HEADER_LENGTH,
            null,
            plain,
            0);
    if (n < 0 || !receiving.acceptCounter(receiveCounter++)) {
      throw new IllegalStateException("open failed");
    }
    return n;
  }
}
