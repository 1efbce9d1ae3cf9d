package dev.trellis.proto.wireguard;

import java.security.SecureRandom;
import org.bouncycastle.math.ec.rfc7748.X25519;

/** X25519 key generation and Diffie-Hellman (BouncyCastle is ~2x the JDK's speed here). */
public final class Curve25519 {
  public static final int KEY_LENGTH = 32;
  private static final SecureRandom RANDOM = new SecureRandom();

  private Curve25519() {}

  public static byte[] generatePrivateKey() {
    byte[] key = new byte[KEY_LENGTH];
    X25519.generatePrivateKey(RANDOM, key);
    return clamp(key);
  }

  /** The clamping every WireGuard implementation applies to a private key before storing it. */
  public static byte[] clamp(byte[] privateKey) {
    byte[] key = privateKey.clone();
    key[0] &= (byte) 248;
    key[31] = (byte) ((key[31] & 127) | 64);
    return key;
  }

  public static byte[] publicKey(byte[] privateKey) {
    byte[] pub = new byte[KEY_LENGTH];
    X25519.generatePublicKey(privateKey, 0, pub, 0);
    return pub;
  }

  /**
   * Shared secret of a private and a public key, or null when the result is all zeros (a low-order
   * public key), which the protocol must reject.
   */
  public static byte[] sharedSecret(byte[] privateKey, byte[] publicKey) {
    byte[] out = new byte[KEY_LENGTH];
    if (!X25519.calculateAgreement(privateKey, 0, publicKey, 0, out, 0)) {
      return null;
    }
    return out;
  }
}
