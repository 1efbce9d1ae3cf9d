package dev.trellis.proto.wireguard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ChaChaPolyTest {
  private static final HexFormat HEX = HexFormat.of();

  // RFC 8439 section 2.8.2
  private static final byte[] KEY =
      HEX.parseHex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  private static final byte[] AAD = HEX.parseHex("50515253c0c1c2c3c4c5c6c7");
  private static final byte[] RFC_NONCE = HEX.parseHex("070000004041424344454647");
  private static final byte[] PLAINTEXT =
      ("Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
              + "for the future, sunscreen would be it.")
          .getBytes(StandardCharsets.US_ASCII);
  private static final byte[] CIPHERTEXT =
      HEX.parseHex(
          "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
              + "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
              + "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
              + "3ff4def08e4b7a9de576d26586cec64b6116");
  private static final byte[] TAG = HEX.parseHex("1ae10b594f09e26a7e902ecbd0600691");

  private static byte[] jdk(int mode, byte[] key, byte[] nonce, byte[] input, byte[] aad)
      throws Exception {
    Cipher c = Cipher.getInstance("ChaCha20-Poly1305");
    c.init(mode, new SecretKeySpec(key, "ChaCha20"), new IvParameterSpec(nonce));
    if (aad != null) {
      c.updateAAD(aad);
    }
    return c.doFinal(input);
  }

  private static byte[] concat(byte[] a, byte[] b) {
    byte[] out = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  private static byte[] wireGuardNonce(long counter) {
    byte[] n = new byte[12];
    for (int i = 0; i < 8; i++) {
      n[4 + i] = (byte) (counter >>> (8 * i));
    }
    return n;
  }

  @Test
  void rfc8439AeadVectorOnTheJdkCipher() throws Exception {
    assertEquals(114, PLAINTEXT.length);
    byte[] sealed = jdk(Cipher.ENCRYPT_MODE, KEY, RFC_NONCE, PLAINTEXT, AAD);
    assertArrayEquals(concat(CIPHERTEXT, TAG), sealed);
    assertArrayEquals(PLAINTEXT, jdk(Cipher.DECRYPT_MODE, KEY, RFC_NONCE, sealed, AAD));
  }

  @Test
  void counterMapsToZeroPrefixedLittleEndianNonce() throws Exception {
    ChaChaPoly ours = new ChaChaPoly();
    long[] counters = {
      0, 1, 255, 256, 0x4746454443424140L, 0x0102030405060708L, -1L, Long.MIN_VALUE
    };
    for (long c : counters) {
      byte[] expected = jdk(Cipher.ENCRYPT_MODE, KEY, wireGuardNonce(c), PLAINTEXT, AAD);
      assertArrayEquals(
          expected, ours.seal(KEY, c, PLAINTEXT, AAD), "counter " + Long.toHexString(c));
      assertArrayEquals(PLAINTEXT, ours.open(KEY, c, expected, AAD));
    }
    // Explicit bytes for one counter.
    assertEquals("000000000807060504030201", HEX.formatHex(wireGuardNonce(0x0102030405060708L)));
    // The RFC nonce minus its 4-byte constant is counter 0x4746454443424140 here: a different
    // nonce,
    // hence different ciphertext than the RFC vector.
    byte[] ourSealed = ours.seal(KEY, 0x4746454443424140L, PLAINTEXT, AAD);
    assertEquals(PLAINTEXT.length + 16, ourSealed.length);
    assertNotEqualsArray(concat(CIPHERTEXT, TAG), ourSealed);
  }

  private static void assertNotEqualsArray(byte[] a, byte[] b) {
    assertEquals(false, Arrays.equals(a, b));
  }

  @Test
  void offsetApiMatchesArrayApiAndWorksInPlaceRanges() {
    ChaChaPoly aead = new ChaChaPoly();
    SecretKeySpec key = ChaChaPoly.key(KEY);
    byte[] in = new byte[PLAINTEXT.length + 10];
    System.arraycopy(PLAINTEXT, 0, in, 5, PLAINTEXT.length);
    byte[] out = new byte[PLAINTEXT.length + 16 + 3];
    assertEquals(PLAINTEXT.length + 16, aead.seal(key, 42, in, 5, PLAINTEXT.length, AAD, out, 3));
    // A second instance: the JDK cipher refuses to encrypt twice with one key and nonce.
    assertArrayEquals(
        new ChaChaPoly().seal(KEY, 42, PLAINTEXT, AAD), Arrays.copyOfRange(out, 3, out.length));
    byte[] back = new byte[PLAINTEXT.length + 1];
    assertEquals(PLAINTEXT.length, aead.open(key, 42, out, 3, PLAINTEXT.length + 16, AAD, back, 1));
    assertArrayEquals(PLAINTEXT, Arrays.copyOfRange(back, 1, back.length));
    // null AAD equals empty AAD
    assertArrayEquals(
        new ChaChaPoly().seal(KEY, 1, PLAINTEXT, new byte[0]),
        sealWithNullAad(new ChaChaPoly(), key));
  }

  private static byte[] sealWithNullAad(ChaChaPoly aead, SecretKeySpec key) {
    byte[] out = new byte[PLAINTEXT.length + 16];
    aead.seal(key, 1, PLAINTEXT, 0, PLAINTEXT.length, null, out, 0);
    return out;
  }

  @Test
  void emptyPlaintextIsJustATag() {
    ChaChaPoly aead = new ChaChaPoly();
    byte[] sealed = aead.seal(KEY, 0, new byte[0], null);
    assertEquals(16, sealed.length);
    assertArrayEquals(new byte[0], aead.open(KEY, 0, sealed, null));
    assertNull(aead.open(KEY, 1, sealed, null));
  }

  @Test
  void anyTamperingFailsToOpen() {
    ChaChaPoly aead = new ChaChaPoly();
    SecretKeySpec key = ChaChaPoly.key(KEY);
    byte[] sealed = aead.seal(KEY, 9, PLAINTEXT, AAD);
    for (int i = 0; i < sealed.length; i++) {
      byte[] bad = sealed.clone();
      bad[i] ^= (byte) (1 << (i % 8));
      assertNull(aead.open(KEY, 9, bad, AAD), "byte " + i);
      assertEquals(
          -1, aead.open(key, 9, bad, 0, bad.length, AAD, new byte[bad.length], 0), "byte " + i);
    }
    byte[] badAad = AAD.clone();
    badAad[0] ^= 1;
    assertNull(aead.open(KEY, 9, sealed, badAad));
    assertNull(aead.open(KEY, 10, sealed, AAD), "wrong counter");
    byte[] otherKey = KEY.clone();
    otherKey[31] ^= 1;
    assertNull(aead.open(otherKey, 9, sealed, AAD), "wrong key");
    assertNull(aead.open(KEY, 9, Arrays.copyOf(sealed, 15), AAD), "shorter than a tag");
    assertEquals(-1, aead.open(key, 9, sealed, 0, 15, AAD, new byte[16], 0));
    assertNull(aead.open(KEY, 9, Arrays.copyOf(sealed, sealed.length - 1), AAD), "truncated");
    // the instance is still usable after failures
    assertArrayEquals(PLAINTEXT, aead.open(KEY, 9, sealed, AAD));
  }

  @Test
  void randomRoundTripsAcrossInstances() {
    Random r = new Random(7);
    ChaChaPoly a = new ChaChaPoly();
    ChaChaPoly b = ChaChaPoly.forThisThread();
    for (int i = 0; i < 200; i++) {
      byte[] key = new byte[32];
      r.nextBytes(key);
      byte[] pt = new byte[r.nextInt(1500)];
      r.nextBytes(pt);
      long counter = r.nextLong();
      byte[] sealed = a.seal(key, counter, pt, null);
      assertNotNull(b.open(key, counter, sealed, null));
      assertArrayEquals(pt, b.open(key, counter, sealed, null));
    }
  }

  @Test
  void jdkRejectsTamperedRfcVector() {
    byte[] bad = concat(CIPHERTEXT, TAG);
    bad[bad.length - 1] ^= 1;
    assertThrows(
        AEADBadTagException.class, () -> jdk(Cipher.DECRYPT_MODE, KEY, RFC_NONCE, bad, AAD));
  }
}
