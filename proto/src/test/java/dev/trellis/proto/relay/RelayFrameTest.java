package dev.trellis.proto.relay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.proto.relay.RelayFrame.FormatException;
import dev.trellis.proto.wireguard.Curve25519;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;

class RelayFrameTest {
  private static final Random RANDOM = new Random(42);

  private static byte[] random(int n) {
    byte[] b = new byte[n];
    RANDOM.nextBytes(b);
    return b;
  }

  private static List<RelayFrame.Frame> samples() {
    byte[] packet = random(1400);
    return List.of(
        new RelayFrame.ServerHello(random(32), random(32)),
        new RelayFrame.ClientAuth(random(32), random(32)),
        new RelayFrame.ServerReady(),
        new RelayFrame.SendPacket(random(32), packet, 0, packet.length),
        new RelayFrame.RecvPacket(random(32), packet, 100, 1),
        new RelayFrame.ForwardPacket(random(32), random(32), packet, 7, 1393),
        new RelayFrame.KeepAlive(),
        new RelayFrame.Ping(random(8)),
        new RelayFrame.Pong(random(8)),
        new RelayFrame.PeerGone(random(32), RelayFrame.GONE_DISCONNECTED),
        new RelayFrame.PeerGone(random(32), RelayFrame.GONE_NOT_CONNECTED),
        new RelayFrame.Health(""),
        new RelayFrame.Health("überlastet"),
        new RelayFrame.Restarting(0xffff_ffffL, 1234),
        new RelayFrame.Error("node key is not registered"));
  }

  @Test
  void everyFrameRoundTrips() throws Exception {
    for (RelayFrame.Frame frame : samples()) {
      byte[] bytes = RelayFrame.encode(frame);
      RelayFrame.Frame back = RelayFrame.parse(bytes);
      assertEquals(frame.getClass(), back.getClass());
      assertArrayEquals(bytes, RelayFrame.encode(back), frame.getClass().getSimpleName());
    }
  }

  @Test
  void layoutIsAsDocumented() throws Exception {
    byte[] dst = random(32);
    byte[] packet = {9, 8, 7};
    byte[] frame = RelayFrame.encode(new RelayFrame.SendPacket(dst, packet, 0, 3));
    assertEquals(1 + 32 + 3, frame.length);
    assertEquals(0x04, frame[0]);
    assertArrayEquals(dst, Arrays.copyOfRange(frame, 1, 33));
    assertArrayEquals(packet, Arrays.copyOfRange(frame, 33, 36));
    RelayFrame.SendPacket parsed = (RelayFrame.SendPacket) RelayFrame.parse(frame);
    assertSame(frame, parsed.packet());
    assertEquals(33, parsed.offset());
    assertEquals(3, parsed.length());

    byte[] src = random(32);
    byte[] forward = RelayFrame.encode(new RelayFrame.ForwardPacket(src, dst, packet, 0, 3));
    assertEquals(1 + 64 + 3, forward.length);
    assertEquals(0x0f, forward[0]);
    assertArrayEquals(src, Arrays.copyOfRange(forward, 1, 33));
    assertArrayEquals(dst, Arrays.copyOfRange(forward, 33, 65));
    assertArrayEquals(packet, Arrays.copyOfRange(forward, 65, 68));

    byte[] restarting = RelayFrame.encode(new RelayFrame.Restarting(0x01020304L, 0xfffffffeL));
    assertArrayEquals(
        new byte[] {0x0b, 1, 2, 3, 4, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xfe},
        restarting);
  }

  private static void assertSame(Object a, Object b) {
    assertTrue(a == b);
  }

  @Test
  void largestPacketIsAcceptedAndOneMoreIsNot() throws Exception {
    byte[] max = new byte[RelayFrame.MAX_FRAME];
    max[0] = RelayFrame.FORWARD_PACKET;
    assertEquals(
        RelayFrame.MAX_PACKET, ((RelayFrame.ForwardPacket) RelayFrame.parse(max)).length());
    byte[] maxSend = new byte[RelayFrame.PACKET_HEADER + RelayFrame.MAX_PACKET];
    maxSend[0] = RelayFrame.SEND_PACKET;
    assertEquals(
        RelayFrame.MAX_PACKET, ((RelayFrame.SendPacket) RelayFrame.parse(maxSend)).length());
    byte[] tooLongSend = new byte[maxSend.length + 1];
    tooLongSend[0] = RelayFrame.SEND_PACKET;
    assertThrows(FormatException.class, () -> RelayFrame.parse(tooLongSend));
    byte[] over = new byte[RelayFrame.MAX_FRAME + 1];
    over[0] = RelayFrame.RECV_PACKET;
    FormatException e = assertThrows(FormatException.class, () -> RelayFrame.parse(over));
    assertTrue(e.getMessage().contains("larger than"), e.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () ->
            RelayFrame.packetFrame(RelayFrame.SEND_PACKET, random(32), new byte[70000], 0, 65536));
    assertThrows(
        IllegalArgumentException.class,
        () -> RelayFrame.packetFrame(RelayFrame.SEND_PACKET, random(32), new byte[1], 0, 0));
    assertThrows(
        IllegalArgumentException.class,
        () -> RelayFrame.encode(new RelayFrame.Error("x".repeat(70000))));
  }

  @Test
  void everyTruncationIsRejected() {
    for (RelayFrame.Frame frame : samples()) {
      byte[] bytes = RelayFrame.encode(frame);
      for (int n = 0; n < bytes.length; n++) {
        byte[] cut = Arrays.copyOf(bytes, n);
        boolean variableText =
            frame instanceof RelayFrame.Health || frame instanceof RelayFrame.Error;
        boolean variablePacket =
            frame instanceof RelayFrame.SendPacket
                || frame instanceof RelayFrame.RecvPacket
                || frame instanceof RelayFrame.ForwardPacket;
        if (n >= 1 && variableText) {
          // Text frames have no fixed length: a shorter one is valid if it is still UTF-8.
          try {
            RelayFrame.parse(cut);
          } catch (FormatException e) {
            assertTrue(e.getMessage().contains("UTF-8"), e.getMessage());
          }
          continue;
        }
        int header =
            frame instanceof RelayFrame.ForwardPacket
                ? RelayFrame.FORWARD_HEADER
                : RelayFrame.PACKET_HEADER;
        if (variablePacket && n > header) {
          continue; // a shorter packet is still a packet
        }
        FormatException e =
            assertThrows(
                FormatException.class,
                () -> RelayFrame.parse(cut),
                frame.getClass().getSimpleName() + " cut to " + n);
        assertFalse(e.getMessage().isBlank());
      }
      // One byte too many for a fixed-size frame is rejected as well.
      if (!(frame instanceof RelayFrame.Health
          || frame instanceof RelayFrame.Error
          || frame instanceof RelayFrame.SendPacket
          || frame instanceof RelayFrame.RecvPacket
          || frame instanceof RelayFrame.ForwardPacket)) {
        byte[] longer = Arrays.copyOf(bytes, bytes.length + 1);
        assertThrows(
            FormatException.class,
            () -> RelayFrame.parse(longer),
            frame.getClass().getSimpleName() + " + 1");
      }
    }
  }

  @Test
  void randomGarbageIsRejectedOrParsedNeverCrashes() {
    Random r = new Random(7);
    int parsed = 0;
    for (int i = 0; i < 200_000; i++) {
      byte[] garbage = new byte[r.nextInt(80)];
      r.nextBytes(garbage);
      if (garbage.length > 0 && r.nextBoolean()) {
        garbage[0] = (byte) r.nextInt(16); // mostly known types, so bodies get checked
      }
      try {
        RelayFrame.Frame f = RelayFrame.parse(garbage);
        parsed++;
        assertArrayEquals(
            garbage, RelayFrame.encode(f), "a parsed frame encodes back to the same bytes");
      } catch (FormatException expected) {
        // fine
      }
    }
    assertTrue(parsed > 0);
  }

  @Test
  void unknownTypesAndBadFieldsAreNamed() {
    FormatException unknown =
        assertThrows(FormatException.class, () -> RelayFrame.parse(new byte[] {0x7f, 1, 2}));
    assertTrue(unknown.getMessage().contains("unknown type 0x7f"), unknown.getMessage());
    byte[] gone =
        RelayFrame.encode(new RelayFrame.PeerGone(random(32), RelayFrame.GONE_DISCONNECTED));
    gone[33] = 5;
    assertThrows(FormatException.class, () -> RelayFrame.parse(gone));
    assertThrows(
        FormatException.class, () -> RelayFrame.parse(new byte[] {RelayFrame.ERROR, (byte) 0xc3}));
    FormatException ready =
        assertThrows(
            FormatException.class, () -> RelayFrame.parse(new byte[] {RelayFrame.SERVER_READY, 0}));
    assertTrue(ready.getMessage().contains("ServerReady"), ready.getMessage());
  }

  @Test
  void proofVerifiesOnlyWithTheRightKeysAndChallenge() {
    byte[] relayPrivate = Curve25519.generatePrivateKey();
    byte[] nodePrivate = Curve25519.generatePrivateKey();
    RelayFrame.ServerHello hello =
        new RelayFrame.ServerHello(Curve25519.publicKey(relayPrivate), random(32));
    RelayFrame.ClientAuth auth = RelayFrame.authenticate(nodePrivate, hello);
    assertArrayEquals(Curve25519.publicKey(nodePrivate), auth.nodeKey());
    assertTrue(RelayFrame.verify(relayPrivate, hello.challenge(), auth));
    // Another challenge, another relay, or a claimed key the prover does not hold: refused.
    assertFalse(RelayFrame.verify(relayPrivate, random(32), auth));
    assertFalse(RelayFrame.verify(Curve25519.generatePrivateKey(), hello.challenge(), auth));
    byte[] victim = Curve25519.publicKey(Curve25519.generatePrivateKey());
    assertFalse(
        RelayFrame.verify(
            relayPrivate, hello.challenge(), new RelayFrame.ClientAuth(victim, auth.proof())));
    // A low-order key has no shared secret and never verifies.
    assertFalse(
        RelayFrame.verify(
            relayPrivate,
            hello.challenge(),
            new RelayFrame.ClientAuth(new byte[32], auth.proof())));
  }

  @Test
  void sameFramesCarryOnlyThePacket() throws Exception {
    byte[] packet = {9, 8, 7};
    byte[] send = RelayFrame.sameFrame(RelayFrame.SEND_SAME, packet, 0, 3);
    Assertions.assertArrayEquals(new byte[] {RelayFrame.SEND_SAME, 9, 8, 7}, send);
    RelayFrame.SendSame parsed = (RelayFrame.SendSame) RelayFrame.parse(send);
    Assertions.assertArrayEquals(
        packet,
        Arrays.copyOfRange(parsed.packet(), parsed.offset(), parsed.offset() + parsed.length()));
    byte[] recv = RelayFrame.encode(new RelayFrame.RecvSame(packet, 0, 3));
    Assertions.assertInstanceOf(RelayFrame.RecvSame.class, RelayFrame.parse(recv));
    Assertions.assertThrows(
        RelayFrame.FormatException.class,
        () -> RelayFrame.parse(new byte[] {RelayFrame.RECV_SAME}),
        "an empty packet is malformed");
  }
}
