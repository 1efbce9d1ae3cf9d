package dev.trellis.dataplane.bench;

import dev.trellis.proto.wireguard.Cookie;
import dev.trellis.proto.wireguard.Curve25519;
import dev.trellis.proto.wireguard.Handshake;
import dev.trellis.proto.wireguard.Keypair;
import dev.trellis.proto.wireguard.Message;
import dev.trellis.proto.wireguard.Tai64n;
import java.time.Instant;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.infra.Blackhole;

/**
 * One complete WireGuard handshake per operation, both sides in one thread, through the same proto
 * classes the device uses: initiation with MACs, MAC1 check, open + consume, response with MACs,
 * MAC1 check, consume, and key derivation on both sides. That is eight X25519 scalar
 * multiplications: two ephemeral public keys and six agreements (es twice, ee and se on each side);
 * the static-static secret is cached per peer, as in the device.
 *
 * <p>The responder's flood (20 ms) and replay (TAI64N) checks would reject a tight loop, so the
 * benchmark feeds a fake clock that advances 25 ms per operation and timestamps 1 s apart.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class HandshakeBenchmark {
  private static final long STEP_NANOS = 25_000_000L;

  private byte[] initiatorPrivate;
  private byte[] initiatorPublic;
  private byte[] responderPrivate;
  private byte[] responderPublic;
  private Handshake initiator;
  private Handshake responder;
  private Cookie.Generator initiatorMacs; // keyed by the responder's public key
  private Cookie.Generator responderMacs; // keyed by the initiator's public key
  private Cookie.Checker responderChecker;
  private Cookie.Checker initiatorChecker;
  private Instant clock;
  private long nowNanos;
  private int index;

  @Setup(Level.Trial)
  public void setUp() {
    initiatorPrivate = Curve25519.generatePrivateKey();
    initiatorPublic = Curve25519.publicKey(initiatorPrivate);
    responderPrivate = Curve25519.generatePrivateKey();
    responderPublic = Curve25519.publicKey(responderPrivate);
    initiator = new Handshake(initiatorPrivate, responderPublic);
    responder = new Handshake(responderPrivate, initiatorPublic);
    initiatorMacs = new Cookie.Generator(responderPublic);
    responderMacs = new Cookie.Generator(initiatorPublic);
    responderChecker = new Cookie.Checker(responderPublic);
    initiatorChecker = new Cookie.Checker(initiatorPublic);
    clock = Instant.now();
    nowNanos = System.nanoTime();
  }

  @Benchmark
  public void fullHandshake(Blackhole bh) {
    nowNanos += STEP_NANOS;
    clock = clock.plusSeconds(1);
    int initiatorIndex = ++index;
    int responderIndex = ++index;

    // Initiator: message 1.
    Message.HandshakeInitiation init = initiator.createInitiation(initiatorIndex, Tai64n.of(clock));
    byte[] initBytes = init.encode();
    initiatorMacs.addMacs(initBytes, nowNanos);

    // Responder: check, open, consume, answer, derive.
    if (!responderChecker.checkMac1(initBytes, 0, initBytes.length)) {
      throw new IllegalStateException("mac1 of the initiation did not verify");
    }
    Message.HandshakeInitiation received =
        Message.HandshakeInitiation.parse(initBytes, 0, initBytes.length);
    Handshake.InitiationOpening opening =
        Handshake.openInitiation(responderPrivate, responderPublic, received);
    if (opening == null || !responder.consumeInitiation(opening, nowNanos)) {
      throw new IllegalStateException("responder rejected the initiation");
    }
    Message.HandshakeResponse response = responder.createResponse(responderIndex);
    byte[] responseBytes = response.encode();
    responderMacs.addMacs(responseBytes, nowNanos);
    Keypair responderKeys = responder.deriveKeys(nowNanos);

    // Initiator: check, consume, derive.
    if (!initiatorChecker.checkMac1(responseBytes, 0, responseBytes.length)) {
      throw new IllegalStateException("mac1 of the response did not verify");
    }
    Message.HandshakeResponse answer =
        Message.HandshakeResponse.parse(responseBytes, 0, responseBytes.length);
    if (!initiator.consumeResponse(answer)) {
      throw new IllegalStateException("initiator rejected the response");
    }
    Keypair initiatorKeys = initiator.deriveKeys(nowNanos);
    if (initiatorKeys == null || responderKeys == null) {
      throw new IllegalStateException("no keys derived");
    }
    bh.consume(initiatorKeys);
    bh.consume(responderKeys);
  }

  /** One X25519 agreement, for scale: a full handshake does eight scalar multiplications. */
  @Benchmark
  public byte[] x25519Agreement() {
    return Curve25519.sharedSecret(initiatorPrivate, responderPublic);
  }
}
