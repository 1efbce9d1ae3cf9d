package dev.trellis.proto.wireguard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class CookieTest {
  private static final HexFormat HEX = HexFormat.of();
  private static final long T0 = 5_000_000_000_000L;
  private static final long SECOND = 1_000_000_000L;
  private static final byte[] SOURCE = {
    (byte) 192, (byte) 168, 1, 7, (byte) 0xca, 0x6c
  }; // 192.168.1.7:51820
  private static final byte[] OTHER_ADDRESS = {(byte) 192, (byte) 168, 1, 8, (byte) 0xca, 0x6c};
  private static final byte[] OTHER_PORT = {(byte) 192, (byte) 168, 1, 7, (byte) 0xca, 0x6d};

  private final Random random = new Random(3);
  private byte[] responderPublic;
  private Cookie.Checker checker;
  private Cookie.Generator generator;

  @BeforeEach
  void setUp() {
    responderPublic = Curve25519.publicKey(Curve25519.generatePrivateKey());
    checker = new Cookie.Checker(responderPublic);
    generator = new Cookie.Generator(responderPublic);
  }

  private byte[] initiationBytes() {
    byte[] b = new byte[32];
    random.nextBytes(b);
    Message.HandshakeInitiation m =
        new Message.HandshakeInitiation(
            random.nextInt(), b, new byte[48], new byte[28], new byte[16], new byte[16]);
    byte[] wire = m.encode();
    // fill the encrypted fields with noise too
    for (int i = 40; i < 116; i++) {
      wire[i] = (byte) random.nextInt();
    }
    return wire;
  }

  private static boolean allZero(byte[] b, int from, int to) {
    for (int i = from; i < to; i++) {
      if (b[i] != 0) {
        return false;
      }
    }
    return true;
  }

  @Test
  void mac1AcceptsAndAnyFlippedBitRejects() {
    byte[] msg = initiationBytes();
    generator.addMacs(msg, T0);
    assertFalse(allZero(msg, 116, 132), "mac1 filled in");
    assertTrue(allZero(msg, 132, 148), "no cookie yet, so mac2 is zero");
    assertTrue(checker.checkMac1(msg, 0, msg.length));
    // mac1 is the documented keyed hash
    byte[] key = NoiseHash.hash(Cookie.LABEL_MAC1, responderPublic);
    assertArrayEquals(NoiseHash.mac(key, msg, 0, 116), Arrays.copyOfRange(msg, 116, 132));
    for (int bit = 0; bit < 132 * 8; bit++) {
      byte[] bad = msg.clone();
      bad[bit / 8] ^= (byte) (1 << (bit % 8));
      assertFalse(checker.checkMac1(bad, 0, bad.length), "bit " + bit);
    }
    // mac2 is not covered by mac1
    byte[] mac2Changed = msg.clone();
    mac2Changed[140] ^= 1;
    assertTrue(checker.checkMac1(mac2Changed, 0, mac2Changed.length));
  }

  @Test
  void mac1WorksAtAnOffsetAndForResponses() {
    byte[] resp =
        new Message.HandshakeResponse(1, 2, new byte[32], new byte[16], new byte[16], new byte[16])
            .encode();
    generator.addMacs(resp, T0);
    byte[] big = new byte[resp.length + 20];
    System.arraycopy(resp, 0, big, 9, resp.length);
    assertTrue(checker.checkMac1(big, 9, resp.length));
    assertFalse(checker.checkMac1(big, 8, resp.length));
  }

  @Test
  void mac1KeyedToAnotherPublicKeyIsRejected() {
    byte[] msg = initiationBytes();
    new Cookie.Generator(Curve25519.publicKey(Curve25519.generatePrivateKey())).addMacs(msg, T0);
    assertFalse(checker.checkMac1(msg, 0, msg.length));
  }

  @Test
  void cookieReplyRoundTripEnablesMac2BoundToSource() {
    byte[] first = initiationBytes();
    generator.addMacs(first, T0);
    assertFalse(generator.hasFreshCookie(T0));
    Message.CookieReply reply = checker.createReply(first, 0, first.length, 0x1234, SOURCE, T0);
    assertEquals(0x1234, reply.receiver());
    byte[] replyWire = reply.encode();
    Message.CookieReply parsed = Message.CookieReply.parse(replyWire, 0, replyWire.length);
    assertTrue(generator.consumeReply(parsed, T0 + SECOND));
    assertTrue(generator.hasFreshCookie(T0 + SECOND));

    byte[] second = initiationBytes();
    generator.addMacs(second, T0 + 2 * SECOND);
    assertFalse(allZero(second, 132, 148), "mac2 present with a fresh cookie");
    assertTrue(checker.checkMac1(second, 0, second.length));
    assertTrue(checker.checkMac2(second, 0, second.length, SOURCE, T0 + 2 * SECOND));
    assertFalse(checker.checkMac2(second, 0, second.length, OTHER_ADDRESS, T0 + 2 * SECOND));
    assertFalse(checker.checkMac2(second, 0, second.length, OTHER_PORT, T0 + 2 * SECOND));
    byte[] tampered = second.clone();
    tampered[20] ^= 1;
    assertFalse(checker.checkMac2(tampered, 0, tampered.length, SOURCE, T0 + 2 * SECOND));
    byte[] badMac2 = second.clone();
    badMac2[147] ^= 1;
    assertFalse(checker.checkMac2(badMac2, 0, badMac2.length, SOURCE, T0 + 2 * SECOND));
  }

  @Test
  void tamperedCookieReplyIsRejected() {
    byte[] msg = initiationBytes();
    generator.addMacs(msg, T0);
    Message.CookieReply reply = checker.createReply(msg, 0, msg.length, 1, SOURCE, T0);
    for (int i = 0; i < 24; i++) {
      byte[] nonce = reply.nonce().clone();
      nonce[i] ^= 1;
      assertFalse(
          generator.consumeReply(new Message.CookieReply(1, nonce, reply.encryptedCookie()), T0),
          "nonce " + i);
    }
    for (int i = 0; i < 32; i++) {
      byte[] enc = reply.encryptedCookie().clone();
      enc[i] ^= 1;
      assertFalse(
          generator.consumeReply(new Message.CookieReply(1, reply.nonce(), enc), T0),
          "cookie " + i);
    }
    assertFalse(generator.hasFreshCookie(T0));
    assertTrue(generator.consumeReply(reply, T0));
  }

  @Test
  void cookieReplyToAnOlderMessageIsRejected() {
    byte[] first = initiationBytes();
    generator.addMacs(first, T0);
    Message.CookieReply reply = checker.createReply(first, 0, first.length, 1, SOURCE, T0);
    byte[] second = initiationBytes();
    generator.addMacs(second, T0 + SECOND);
    // the reply is bound (as AAD) to the first message's mac1
    assertFalse(generator.consumeReply(reply, T0 + SECOND));
  }

  @Test
  void cookieReplyBeforeAnyMessageSentIsRejected() {
    byte[] msg = initiationBytes();
    new Cookie.Generator(responderPublic).addMacs(msg, T0);
    Message.CookieReply reply = checker.createReply(msg, 0, msg.length, 1, SOURCE, T0);
    assertFalse(generator.consumeReply(reply, T0));
    assertFalse(generator.hasFreshCookie(T0));
  }

  @Test
  void cookieReplyFromAnotherResponderIsRejected() {
    byte[] msg = initiationBytes();
    generator.addMacs(msg, T0);
    Cookie.Checker other =
        new Cookie.Checker(Curve25519.publicKey(Curve25519.generatePrivateKey()));
    assertFalse(generator.consumeReply(other.createReply(msg, 0, msg.length, 1, SOURCE, T0), T0));
  }

  @Test
  void cookieIsNotUsedAfterOneHundredTwentySeconds() {
    byte[] msg = initiationBytes();
    generator.addMacs(msg, T0);
    assertTrue(generator.consumeReply(checker.createReply(msg, 0, msg.length, 1, SOURCE, T0), T0));
    long almost = T0 + Cookie.COOKIE_REFRESH_NANOS - 1;
    assertTrue(generator.hasFreshCookie(almost));
    byte[] stillFresh = initiationBytes();
    generator.addMacs(stillFresh, almost);
    assertFalse(allZero(stillFresh, 132, 148));
    long expired = T0 + Cookie.COOKIE_REFRESH_NANOS;
    assertFalse(generator.hasFreshCookie(expired));
    byte[] stale = initiationBytes();
    generator.addMacs(stale, expired);
    assertTrue(allZero(stale, 132, 148), "an expired cookie gives no mac2");
    assertEquals(120 * SECOND, Cookie.COOKIE_REFRESH_NANOS);
  }

  /** mac2 computed with the cookie an all-zero responder secret would give. */
  private byte[] withZeroSecretMac2(byte[] source) {
    byte[] msg = initiationBytes();
    generator.addMacs(msg, T0);
    byte[] forgedCookie = NoiseHash.mac(new byte[32], source, 0, source.length);
    byte[] mac2 = NoiseHash.mac(forgedCookie, msg, 0, 132);
    System.arraycopy(mac2, 0, msg, 132, 16);
    return msg;
  }

  @Test
  void mac2IsNotAcceptedBeforeTheResponderHasASecret() {
    byte[] forged = withZeroSecretMac2(SOURCE);
    for (long now : new long[] {0, 1, T0, Long.MAX_VALUE / 2, -T0}) {
      assertFalse(checker.checkMac2(forged, 0, forged.length, SOURCE, now), "now=" + now);
    }
  }

  @Test
  void responderSecretIsRandomNotZero() {
    byte[] msg = initiationBytes();
    generator.addMacs(msg, T0);
    checker.createReply(msg, 0, msg.length, 1, SOURCE, T0);
    byte[] forged = withZeroSecretMac2(SOURCE);
    assertFalse(
        checker.checkMac2(forged, 0, forged.length, SOURCE, T0 + SECOND),
        "a cookie derived from a zero secret must not validate");
  }

  @Test
  void responderSecretRotatesAfterOneHundredTwentySeconds() {
    byte[] msg = initiationBytes();
    generator.addMacs(msg, T0);
    assertTrue(generator.consumeReply(checker.createReply(msg, 0, msg.length, 1, SOURCE, T0), T0));
    byte[] withMac2 = initiationBytes();
    generator.addMacs(withMac2, T0 + SECOND);
    assertTrue(checker.checkMac2(withMac2, 0, withMac2.length, SOURCE, T0 + SECOND));
    assertFalse(
        checker.checkMac2(
            withMac2, 0, withMac2.length, SOURCE, T0 + Cookie.COOKIE_REFRESH_NANOS + SECOND),
        "the secret behind that cookie has expired");
    // a new reply after rotation issues a different cookie; the old mac2 no longer validates
    long later = T0 + Cookie.COOKIE_REFRESH_NANOS + 2 * SECOND;
    checker.createReply(withMac2, 0, withMac2.length, 1, SOURCE, later);
    assertFalse(checker.checkMac2(withMac2, 0, withMac2.length, SOURCE, later));
  }

  // ---- XChaCha20-Poly1305 ------------------------------------------------------------------

  @Test
  void hChaCha20DraftVector() {
    byte[] key = HEX.parseHex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    byte[] nonce = HEX.parseHex("000000090000004a0000000031415927");
    assertEquals(
        "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc",
        HEX.formatHex(XChaChaPoly.hChaCha20(key, nonce)));
  }

  @Test
  void xChaChaIsHChaChaSubkeyPlusChaChaPolyWithNonceTail() {
    byte[] key = new byte[32];
    byte[] nonce = new byte[24];
    random.nextBytes(key);
    random.nextBytes(nonce);
    byte[] pt = "sixteen byte ck!".getBytes(StandardCharsets.US_ASCII);
    byte[] aad = "aad".getBytes(StandardCharsets.US_ASCII);
    byte[] sealed = XChaChaPoly.seal(key, nonce, pt, aad);
    long tail = 0;
    for (int i = 7; i >= 0; i--) {
      tail = (tail << 8) | (nonce[16 + i] & 0xff);
    }
    byte[] subkey = XChaChaPoly.hChaCha20(key, Arrays.copyOf(nonce, 16));
    assertArrayEquals(new ChaChaPoly().seal(subkey, tail, pt, aad), sealed);
  }

  @Test
  void xChaChaRoundTripAndTamper() {
    byte[] key = new byte[32];
    byte[] nonce = new byte[24];
    random.nextBytes(key);
    random.nextBytes(nonce);
    byte[] pt = new byte[16];
    random.nextBytes(pt);
    byte[] aad = new byte[16];
    byte[] sealed = XChaChaPoly.seal(key, nonce, pt, aad);
    assertEquals(32, sealed.length);
    assertArrayEquals(pt, XChaChaPoly.open(key, nonce, sealed, aad));
    for (int i = 0; i < sealed.length; i++) {
      byte[] bad = sealed.clone();
      bad[i] ^= (byte) 0x80;
      assertNull(XChaChaPoly.open(key, nonce, bad, aad), "ciphertext byte " + i);
    }
    for (int i = 0; i < 24; i++) {
      byte[] badNonce = nonce.clone();
      badNonce[i] ^= 1;
      assertNull(XChaChaPoly.open(key, badNonce, sealed, aad), "nonce byte " + i);
    }
    byte[] badAad = aad.clone();
    badAad[3] = 1;
    assertNull(XChaChaPoly.open(key, nonce, sealed, badAad));
    // a short nonce is refused (the exact exception type is an implementation detail)
    assertThrows(RuntimeException.class, () -> XChaChaPoly.seal(key, new byte[12], pt, aad));
    assertNotNull(XChaChaPoly.open(key, nonce, sealed, aad));
  }
}
