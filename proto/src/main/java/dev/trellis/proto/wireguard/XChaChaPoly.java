package dev.trellis.proto.wireguard;

/**
 * XChaCha20-Poly1305, used only to encrypt cookies: HChaCha20 derives a subkey from the first 16
 * bytes of the 24-byte nonce, then ChaCha20-Poly1305 runs with the last 8 bytes as its counter.
 */
public final class XChaChaPoly {
  public static final int NONCE_LENGTH = 24;
  private static final int[] SIGMA = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};

  private XChaChaPoly() {}

  public static byte[] seal(byte[] key, byte[] nonce, byte[] plaintext, byte[] aad) {
    tailCounter(nonce);
    return ChaChaPoly.forThisThread()
        .seal(hChaCha20(key, nonce), tailCounter(nonce), plaintext, aad);
  }

  /** Returns the plaintext or null when authentication fails. */
  public static byte[] open(byte[] key, byte[] nonce, byte[] ciphertext, byte[] aad) {
    tailCounter(nonce);
    return ChaChaPoly.forThisThread()
        .open(hChaCha20(key, nonce), tailCounter(nonce), ciphertext, aad);
  }

  private static long tailCounter(byte[] nonce) {
    if (nonce.length != NONCE_LENGTH) {
      throw new IllegalArgumentException("XChaCha20 nonce must be 24 bytes");
    }
    long counter = 0;
    for (int i = 7; i >= 0; i--) {
      counter = (counter << 8) | (nonce[16 + i] & 0xff);
    }
    return counter;
  }

  static byte[] hChaCha20(byte[] key, byte[] nonce) {
    int[] x = new int[16];
    System.arraycopy(SIGMA, 0, x, 0, 4);
    for (int i = 0; i < 8; i++) {
      x[4 + i] = littleEndianInt(key, 4 * i);
    }
    for (int i = 0; i < 4; i++) {
      x[12 + i] = littleEndianInt(nonce, 4 * i);
    }
    for (int round = 0; round < 10; round++) {
      quarterRound(x, 0, 4, 8, 12);
      quarterRound(x, 1, 5, 9, 13);
      quarterRound(x, 2, 6, 10, 14);
      quarterRound(x, 3, 7, 11, 15);
      quarterRound(x, 0, 5, 10, 15);
      quarterRound(x, 1, 6, 11, 12);
      quarterRound(x, 2, 7, 8, 13);
      quarterRound(x, 3, 4, 9, 14);
    }
    byte[] out = new byte[32];
    int[] words = {x[0], x[1], x[2], x[3], x[12], x[13], x[14], x[15]};
    for (int i = 0; i < 8; i++) {
      for (int b = 0; b < 4; b++) {
        out[4 * i + b] = (byte) (words[i] >>> (8 * b));
      }
    }
    return out;
  }

  private static void quarterRound(int[] x, int a, int b, int c, int d) {
    x[a] += x[b];
    x[d] = Integer.rotateLeft(x[d] ^ x[a], 16);
    x[c] += x[d];
    x[b] = Integer.rotateLeft(x[b] ^ x[c], 12);
    x[a] += x[b];
    x[d] = Integer.rotateLeft(x[d] ^ x[a], 8);
    x[c] += x[d];
    x[b] = Integer.rotateLeft(x[b] ^ x[c], 7);
  }

  private static int littleEndianInt(byte[] b, int off) {
    return (b[off] & 0xff)
        | (b[off + 1] & 0xff) << 8
        | (b[off + 2] & 0xff) << 16
        | (b[off + 3] & 0xff) << 24;
  }
}
