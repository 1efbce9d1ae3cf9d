package dev.trellis.proto.wireguard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.crypto.digests.Blake2sDigest;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class HandshakeTest {
  private static final HexFormat HEX = HexFormat.of();
  private static final long T0 = 1_000_000_000_000L;

  private byte[] initiatorPrivate;
  private byte[] initiatorPublic;
  private byte[] responderPrivate;
  private byte[] responderPublic;
  private Handshake initiator;
  private Handshake responder;

  @BeforeEach
  void keys() {
    initiatorPrivate = Curve25519.generatePrivateKey();
    initiatorPublic = Curve25519.publicKey(initiatorPrivate);
    responderPrivate = Curve25519.generatePrivateKey();
    responderPublic = Curve25519.publicKey(responderPrivate);
    initiator = new Handshake(initiatorPrivate, responderPublic);
    responder = new Handshake(responderPrivate, initiatorPublic);
  }

  private static byte[] timestamp(long epochSecond) {
    return Tai64n.of(Instant.ofEpochSecond(epochSecond));
  }

  /** Encode and parse, as if it went over the wire. */
  private static Message.HandshakeInitiation wire(Message.HandshakeInitiation m) {
    byte[] b = m.encode();
    return Message.HandshakeInitiation.parse(b, 0, b.length);
  }

  private static Message.HandshakeResponse wire(Message.HandshakeResponse m) {
    byte[] b = m.encode();
    return Message.HandshakeResponse.parse(b, 0, b.length);
  }

  private Handshake.InitiationOpening open(Message.HandshakeInitiation m) {
    return Handshake.openInitiation(responderPrivate, responderPublic, m);
  }

  private record Session(Keypair initiator, Keypair responder) {}

  private Session fullExchange(long now) {
    Message.HandshakeInitiation init =
        initiator.createInitiation(111, timestamp(2_000_000_000L + now / 1_000_000_000L));
    assertNotNull(init);
    assertEquals(Handshake.State.INITIATION_CREATED, initiator.state());
    assertEquals(111, initiator.localIndex());
    Handshake.InitiationOpening opening = open(wire(init));
    assertNotNull(opening);
    assertArrayEquals(initiatorPublic, opening.remoteStatic());
    assertTrue(responder.consumeInitiation(opening, now));
    assertEquals(Handshake.State.INITIATION_CONSUMED, responder.state());
    Message.HandshakeResponse resp = responder.createResponse(222);
    assertNotNull(resp);
    assertEquals(Handshake.State.RESPONSE_CREATED, responder.state());
    assertEquals(111, resp.receiver());
    assertEquals(222, resp.sender());
    assertTrue(initiator.consumeResponse(wire(resp)));
    assertEquals(Handshake.State.RESPONSE_CONSUMED, initiator.state());
    Keypair ik = initiator.deriveKeys(now);
    Keypair rk = responder.deriveKeys(now);
    assertNotNull(ik);
    assertNotNull(rk);
    assertEquals(Handshake.State.ZEROED, initiator.state());
    assertEquals(Handshake.State.ZEROED, responder.state());
    return new Session(ik, rk);
  }

  private static void assertSealsTo(Keypair from, Keypair to) {
    byte[] plain = "ping over wireguard".getBytes(StandardCharsets.UTF_8);
    ChaChaPoly aead = new ChaChaPoly();
    byte[] sealed = new byte[plain.length + ChaChaPoly.TAG_LENGTH];
    aead.seal(from.sendKey(), 7, plain, 0, plain.length, null, sealed, 0);
    byte[] opened = new byte[plain.length];
    assertEquals(
        plain.length, aead.open(to.receiveKey(), 7, sealed, 0, sealed.length, null, opened, 0));
    assertArrayEquals(plain, opened);
    // A keypair cannot open what it sent itself: directions use different keys.
    assertEquals(
        -1,
        aead.open(from.receiveKey(), 7, sealed, 0, sealed.length, null, new byte[plain.length], 0));
  }

  @Test
  void fullExchangeDerivesCrossMatchingKeysAndIndices() {
    Session s = fullExchange(T0);
    assertTrue(s.initiator().initiator());
    assertFalse(s.responder().initiator());
    assertEquals(111, s.initiator().localIndex());
    assertEquals(222, s.initiator().remoteIndex());
    assertEquals(222, s.responder().localIndex());
    assertEquals(111, s.responder().remoteIndex());
    assertArrayEquals(
        s.initiator().sendKey().getEncoded(), s.responder().receiveKey().getEncoded());
    assertArrayEquals(
        s.initiator().receiveKey().getEncoded(), s.responder().sendKey().getEncoded());
    assertFalse(
        Arrays.equals(
            s.initiator().sendKey().getEncoded(), s.initiator().receiveKey().getEncoded()));
    assertSealsTo(s.initiator(), s.responder());
    assertSealsTo(s.responder(), s.initiator());
    assertEquals(T0, s.initiator().createdNanos());
  }

  @Test
  void secondExchangeYieldsFreshKeys() {
    Session first = fullExchange(T0);
    Session second = fullExchange(T0 + 1_000_000_000L);
    assertFalse(
        Arrays.equals(
            first.initiator().sendKey().getEncoded(), second.initiator().sendKey().getEncoded()));
    assertSealsTo(second.initiator(), second.responder());
  }

  @Test
  void matchingPresharedKeysHandshake() {
    byte[] psk = new byte[32];
    Arrays.fill(psk, (byte) 0x5a);
    initiator.setPresharedKey(psk);
    responder.setPresharedKey(psk);
    Session withPsk = fullExchange(T0);
    assertSealsTo(withPsk.initiator(), withPsk.responder());
    assertArrayEquals(psk, initiator.presharedKey());
  }

  @Test
  void mismatchedPresharedKeyFailsAtResponse() {
    byte[] psk = new byte[32];
    Arrays.fill(psk, (byte) 1);
    initiator.setPresharedKey(psk);
    // responder has none
    Message.HandshakeInitiation init = initiator.createInitiation(1, timestamp(2_000_000_000L));
    Handshake.InitiationOpening opening = open(wire(init));
    assertNotNull(opening, "the PSK is not involved in the initiation");
    assertTrue(responder.consumeInitiation(opening, T0));
    Message.HandshakeResponse resp = responder.createResponse(2);
    assertNotNull(resp);
    assertFalse(initiator.consumeResponse(wire(resp)));
    assertEquals(
        Handshake.State.INITIATION_CREATED, initiator.state(), "state unchanged on failure");
    assertNull(initiator.deriveKeys(T0));
  }

  @Test
  void initiationToWrongResponderKeyDoesNotOpen() {
    byte[] otherPrivate = Curve25519.generatePrivateKey();
    Message.HandshakeInitiation init = initiator.createInitiation(1, timestamp(2_000_000_000L));
    assertNull(
        Handshake.openInitiation(otherPrivate, Curve25519.publicKey(otherPrivate), wire(init)));
    // right private key but a wrong public key in the hash also fails
    assertNull(
        Handshake.openInitiation(responderPrivate, Curve25519.publicKey(otherPrivate), wire(init)));
  }

  @Test
  void initiationFromUnexpectedStaticKeyIsNotConsumed() {
    Handshake stranger = new Handshake(Curve25519.generatePrivateKey(), responderPublic);
    Message.HandshakeInitiation init = stranger.createInitiation(1, timestamp(2_000_000_000L));
    Handshake.InitiationOpening opening = open(wire(init));
    assertNotNull(opening);
    // responder is configured for initiatorPublic, not the stranger
    assertFalse(responder.consumeInitiation(opening, T0));
    assertEquals(Handshake.State.ZEROED, responder.state());
  }

  @Test
  void replayedInitiationIsRejected() {
    Message.HandshakeInitiation init =
        wire(initiator.createInitiation(1, timestamp(2_000_000_000L)));
    assertTrue(responder.consumeInitiation(open(init), T0));
    // same bytes again, long after the flood interval
    assertFalse(responder.consumeInitiation(open(init), T0 + 10_000_000_000L));
  }

  @Test
  void olderTimestampIsRejectedNewerAccepted() {
    assertTrue(
        responder.consumeInitiation(
            open(wire(initiator.createInitiation(1, timestamp(2_000_000_100L)))), T0));
    long later = T0 + 1_000_000_000L;
    assertFalse(
        responder.consumeInitiation(
            open(wire(initiator.createInitiation(2, timestamp(2_000_000_050L)))), later));
    assertFalse(
        responder.consumeInitiation(
            open(wire(initiator.createInitiation(3, timestamp(2_000_000_100L)))), later),
        "an equal timestamp is a replay too");
    assertTrue(
        responder.consumeInitiation(
            open(wire(initiator.createInitiation(4, timestamp(2_000_000_101L)))), later));
  }

  @Test
  void initiationsCloserThanTwentyMillisecondsAreAFlood() {
    assertTrue(
        responder.consumeInitiation(
            open(wire(initiator.createInitiation(1, timestamp(2_000_000_000L)))), T0));
    long tooSoon = T0 + Handshake.INITIATION_MIN_INTERVAL_NANOS - 1;
    assertFalse(
        responder.consumeInitiation(
            open(wire(initiator.createInitiation(2, timestamp(2_000_000_001L)))), tooSoon));
    long justAfter = T0 + Handshake.INITIATION_MIN_INTERVAL_NANOS;
    assertTrue(
        responder.consumeInitiation(
            open(wire(initiator.createInitiation(3, timestamp(2_000_000_002L)))), justAfter));
    assertEquals(20_000_000L, Handshake.INITIATION_MIN_INTERVAL_NANOS);
  }

  @Test
  void consumeResponseInWrongStateOrIndexIsRejected() {
    Message.HandshakeInitiation init =
        wire(initiator.createInitiation(111, timestamp(2_000_000_000L)));
    assertTrue(responder.consumeInitiation(open(init), T0));
    Message.HandshakeResponse resp = wire(responder.createResponse(222));

    // the responder itself is not waiting for a response
    assertFalse(responder.consumeResponse(resp));
    // a fresh handshake that never initiated
    Handshake idle = new Handshake(initiatorPrivate, responderPublic);
    assertFalse(idle.consumeResponse(resp));
    assertEquals(Handshake.State.ZEROED, idle.state());

    Message.HandshakeResponse wrongIndex =
        new Message.HandshakeResponse(
            resp.sender(),
            112,
            resp.ephemeral(),
            resp.encryptedNothing(),
            resp.mac1(),
            resp.mac2());
    assertFalse(initiator.consumeResponse(wrongIndex));
    assertEquals(Handshake.State.INITIATION_CREATED, initiator.state());

    assertTrue(initiator.consumeResponse(resp));
    // a second copy in RESPONSE_CONSUMED state
    assertFalse(initiator.consumeResponse(resp));
  }

  @Test
  void stateMachineRefusesOutOfOrderSteps() {
    assertNull(responder.createResponse(5), "no response without a consumed initiation");
    assertNull(responder.deriveKeys(T0));
    initiator.createInitiation(1, timestamp(2_000_000_000L));
    assertNull(initiator.deriveKeys(T0), "no keys before the response");
    assertNull(initiator.createResponse(2), "an initiator does not respond");
    initiator.clear();
    assertEquals(Handshake.State.ZEROED, initiator.state());
    assertEquals(0, initiator.localIndex());
  }

  @Test
  void newInitiationSupersedesPendingOne() {
    Message.HandshakeInitiation first =
        wire(initiator.createInitiation(1, timestamp(2_000_000_000L)));
    Message.HandshakeInitiation second =
        wire(initiator.createInitiation(2, timestamp(2_000_000_001L)));
    assertTrue(responder.consumeInitiation(open(first), T0));
    Message.HandshakeResponse stale = wire(responder.createResponse(9));
    assertFalse(initiator.consumeResponse(stale), "response to a superseded initiation");
    assertTrue(responder.consumeInitiation(open(second), T0 + 100_000_000L));
    assertTrue(initiator.consumeResponse(wire(responder.createResponse(10))));
  }

  private static byte[] flip(byte[] field, int index) {
    byte[] copy = field.clone();
    copy[index] ^= 0x01;
    return copy;
  }

  @Test
  void tamperedInitiationFieldsFail() {
    Message.HandshakeInitiation init =
        wire(initiator.createInitiation(1, timestamp(2_000_000_000L)));
    for (int i = 0; i < 48; i++) {
      Message.HandshakeInitiation bad =
          new Message.HandshakeInitiation(
              init.sender(),
              init.ephemeral(),
              flip(init.encryptedStatic(), i),
              init.encryptedTimestamp(),
              init.mac1(),
              init.mac2());
      assertNull(open(bad), "encrypted static byte " + i);
    }
    for (int i = 0; i < 32; i++) {
      Message.HandshakeInitiation bad =
          new Message.HandshakeInitiation(
              init.sender(),
              flip(init.ephemeral(), i),
              init.encryptedStatic(),
              init.encryptedTimestamp(),
              init.mac1(),
              init.mac2());
      assertNull(open(bad), "ephemeral byte " + i);
    }
    for (int i = 0; i < 28; i++) {
      Message.HandshakeInitiation bad =
          new Message.HandshakeInitiation(
              init.sender(),
              init.ephemeral(),
              init.encryptedStatic(),
              flip(init.encryptedTimestamp(), i),
              init.mac1(),
              init.mac2());
      Handshake.InitiationOpening opening = open(bad);
      assertNotNull(opening, "the static key still opens");
      assertFalse(
          responder.consumeInitiation(opening, T0 + i * 100_000_000L),
          "encrypted timestamp byte " + i);
    }
    assertEquals(Handshake.State.ZEROED, responder.state());
    assertTrue(responder.consumeInitiation(open(init), T0), "the untampered original still works");
  }

  @Test
  void tamperedResponseFieldsFail() {
    Message.HandshakeInitiation init =
        wire(initiator.createInitiation(1, timestamp(2_000_000_000L)));
    assertTrue(responder.consumeInitiation(open(init), T0));
    Message.HandshakeResponse resp = wire(responder.createResponse(2));
    for (int i = 0; i < 32; i++) {
      Message.HandshakeResponse bad =
          new Message.HandshakeResponse(
              resp.sender(),
              resp.receiver(),
              flip(resp.ephemeral(), i),
              resp.encryptedNothing(),
              resp.mac1(),
              resp.mac2());
      assertFalse(initiator.consumeResponse(bad), "ephemeral byte " + i);
    }
    for (int i = 0; i < 16; i++) {
      Message.HandshakeResponse bad =
          new Message.HandshakeResponse(
              resp.sender(),
              resp.receiver(),
              resp.ephemeral(),
              flip(resp.encryptedNothing(), i),
              resp.mac1(),
              resp.mac2());
      assertFalse(initiator.consumeResponse(bad), "encrypted-nothing byte " + i);
    }
    assertEquals(Handshake.State.INITIATION_CREATED, initiator.state());
    assertTrue(initiator.consumeResponse(resp), "the untampered original still works");
  }

  @Test
  void lowOrderPeerKeyIsRefused() {
    Handshake toZero = new Handshake(initiatorPrivate, new byte[32]);
    assertNull(toZero.createInitiation(1, timestamp(2_000_000_000L)));
    assertEquals(Handshake.State.ZEROED, toZero.state());
    assertNull(Curve25519.sharedSecret(initiatorPrivate, new byte[32]));
    // An initiation whose ephemeral is all zeros cannot be opened either.
    Message.HandshakeInitiation init =
        wire(initiator.createInitiation(1, timestamp(2_000_000_000L)));
    Message.HandshakeInitiation zeroEphemeral =
        new Message.HandshakeInitiation(
            init.sender(),
            new byte[32],
            init.encryptedStatic(),
            init.encryptedTimestamp(),
            init.mac1(),
            init.mac2());
    assertNull(open(zeroEphemeral));
  }

  // ---- primitives --------------------------------------------------------------------------

  @Test
  void blake2sKnownAnswers() {
    assertEquals(
        "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9",
        HEX.formatHex(NoiseHash.hash(new byte[0])));
    assertEquals(
        "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
        HEX.formatHex(NoiseHash.hash("abc".getBytes(StandardCharsets.US_ASCII))));
    // hashing in parts equals hashing the concatenation
    assertArrayEquals(
        NoiseHash.hash("abc".getBytes(StandardCharsets.US_ASCII)),
        NoiseHash.hash(
            "a".getBytes(StandardCharsets.US_ASCII),
            new byte[0],
            "bc".getBytes(StandardCharsets.US_ASCII)));
  }

  @Test
  void keyedMacMatchesBlake2sWithKey() {
    byte[] key = new byte[32];
    for (int i = 0; i < 32; i++) {
      key[i] = (byte) i;
    }
    byte[] data = "some handshake bytes".getBytes(StandardCharsets.US_ASCII);
    Blake2sDigest d = new Blake2sDigest(key, 16, null, null);
    d.update(data, 0, data.length);
    byte[] expected = new byte[16];
    d.doFinal(expected, 0);
    assertArrayEquals(expected, NoiseHash.mac(key, data, 0, data.length));
    byte[] padded = new byte[data.length + 6];
    System.arraycopy(data, 0, padded, 3, data.length);
    assertArrayEquals(expected, NoiseHash.mac(key, padded, 3, data.length));
  }

  @Test
  void kdfOutputsArePrefixConsistent() {
    byte[] ck = NoiseHash.hash("chain".getBytes(StandardCharsets.US_ASCII));
    byte[] input = "input key material".getBytes(StandardCharsets.US_ASCII);
    byte[][] one = NoiseHash.kdf(1, ck, input);
    byte[][] two = NoiseHash.kdf(2, ck, input);
    byte[][] three = NoiseHash.kdf(3, ck, input);
    assertEquals(1, one.length);
    assertEquals(3, three.length);
    assertArrayEquals(one[0], three[0]);
    assertArrayEquals(two[0], three[0]);
    assertArrayEquals(two[1], three[1]);
    assertFalse(Arrays.equals(three[0], three[1]));
    assertFalse(Arrays.equals(three[1], three[2]));
    // HKDF definition: T1 = HMAC(PRK, 0x01), T2 = HMAC(PRK, T1 || 0x02)
    byte[] prk = NoiseHash.hmac(ck, input);
    assertArrayEquals(NoiseHash.hmac(prk, new byte[] {1}), three[0]);
    assertArrayEquals(NoiseHash.hmac(prk, three[0], new byte[] {2}), three[1]);
    assertArrayEquals(NoiseHash.hmac(prk, three[1], new byte[] {3}), three[2]);
    assertFalse(
        Arrays.equals(
            one[0], NoiseHash.kdf(1, ck, "other".getBytes(StandardCharsets.US_ASCII))[0]));
  }

  @Test
  void initialChainingKeyAndHashConstants() {
    byte[] construction =
        "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s".getBytes(StandardCharsets.US_ASCII);
    byte[] identifier = "WireGuard v1 zx2c4 Jason@zx2c4.com".getBytes(StandardCharsets.US_ASCII);
    byte[] ck = blake2s256(construction);
    byte[] h = blake2s256(ck, identifier);
    assertArrayEquals(construction, Handshake.CONSTRUCTION);
    assertArrayEquals(identifier, Handshake.IDENTIFIER);
    assertArrayEquals(ck, Handshake.INITIAL_CHAIN_KEY);
    assertArrayEquals(h, Handshake.INITIAL_HASH);
    // Value well known from other WireGuard implementations' sources.
    assertEquals(
        "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36", HEX.formatHex(ck));
    assertEquals(
        "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3", HEX.formatHex(h));
  }

  private static byte[] blake2s256(byte[]... parts) {
    Blake2sDigest d = new Blake2sDigest(256);
    for (byte[] p : parts) {
      d.update(p, 0, p.length);
    }
    byte[] out = new byte[32];
    d.doFinal(out, 0);
    return out;
  }

  @Test
  void x25519Rfc7748Section61() {
    byte[] alicePrivate =
        HEX.parseHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    byte[] alicePublic =
        HEX.parseHex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    byte[] bobPrivate =
        HEX.parseHex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    byte[] bobPublic =
        HEX.parseHex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    byte[] shared =
        HEX.parseHex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assertArrayEquals(alicePublic, Curve25519.publicKey(alicePrivate));
    assertArrayEquals(bobPublic, Curve25519.publicKey(bobPrivate));
    assertArrayEquals(shared, Curve25519.sharedSecret(alicePrivate, bobPublic));
    assertArrayEquals(shared, Curve25519.sharedSecret(bobPrivate, alicePublic));
    // X25519 clamps internally, so the clamped key gives the same public key.
    assertArrayEquals(alicePublic, Curve25519.publicKey(Curve25519.clamp(alicePrivate)));
  }

  @Test
  void generatedPrivateKeysAreClampedAndDistinct() {
    byte[] a = Curve25519.generatePrivateKey();
    byte[] b = Curve25519.generatePrivateKey();
    assertNotEquals(HEX.formatHex(a), HEX.formatHex(b));
    assertEquals(0, a[0] & 7);
    assertEquals(0x40, a[31] & 0xc0);
    assertArrayEquals(a, Curve25519.clamp(a));
  }
}
