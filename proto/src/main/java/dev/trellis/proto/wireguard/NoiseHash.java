package dev.trellis.proto.wireguard;

import java.util.Arrays;
import org.bouncycastle.crypto.digests.Blake2sDigest;
import org.bouncycastle.crypto.macs.HMac;
import org.bouncycastle.crypto.params.KeyParameter;

/**
 * The symmetric primitives of WireGuard's Noise_IKpsk2 handshake, all built on BLAKE2s: HASH
 * (BLAKE2s-256), MAC (keyed BLAKE2s-128), HMAC-BLAKE2s and the HKDF chain KDF1..KDF3. Handshakes
 * are rare next to data packets, so these allocate freely for clarity.
 */
public final class NoiseHash {
  public static final int HASH_LENGTH = 32;
  public static final int MAC_LENGTH = 16;

  private NoiseHash() {}

  public static byte[] hash(byte[]... parts) {
    Blake2sDigest digest = new Blake2sDigest(HASH_LENGTH * 8);
    for (byte[] part : parts) {
      digest.update(part, 0, part.length);
    }
    byte[] out = new byte[HASH_LENGTH];
    digest.doFinal(out, 0);
    return out;
  }

  /**
   * Keyed BLAKE2s with a 16-byte output over {@code data[offset, offset+length)}: MAC1, MAC2 and
   * cookies.
   */
  public static byte[] mac(byte[] key, byte[] data, int offset, int length) {
    Blake2sDigest digest = new Blake2sDigest(key, MAC_LENGTH, null, null);
    digest.update(data, offset, length);
    byte[] out = new byte[MAC_LENGTH];
    digest.doFinal(out, 0);
    return out;
  }

  public static byte[] hmac(byte[] key, byte[]... parts) {
    HMac hmac = new HMac(new Blake2sDigest(HASH_LENGTH * 8));
    hmac.init(new KeyParameter(key));
    for (byte[] part : parts) {
      hmac.update(part, 0, part.length);
    }
    byte[] out = new byte[HASH_LENGTH];
    hmac.doFinal(out, 0);
    return out;
  }

  /** HKDF as the whitepaper defines it: returns {@code count} (1..3) 32-byte outputs. */
  public static byte[][] kdf(int count, byte[] chainingKey, byte[] input) {
    if (count < 1 || count > 3) {
      throw new IllegalArgumentException("KDF yields 1 to 3 keys, not " + count);
    }
    byte[] prk = hmac(chainingKey, input);
    byte[][] out = new byte[count][];
    byte[] previous = new byte[0];
    for (int i = 0; i < count; i++) {
      previous = hmac(prk, previous, new byte[] {(byte) (i + 1)});
      out[i] = previous;
    }
    Arrays.fill(prk, (byte) 0);
    return out;
  }
}
