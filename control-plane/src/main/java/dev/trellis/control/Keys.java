package dev.trellis.control;

import java.util.Base64;

/** Checks on the textual form of Curve25519 public keys (machine and node keys). */
public final class Keys {

  private Keys() {}

  /** Standard base64 of exactly 32 bytes (44 characters with padding). */
  public static boolean isPublicKey(String key) {
    if (key == null || key.length() != 44) return false;
    try {
      return Base64.getDecoder().decode(key).length == 32;
    } catch (IllegalArgumentException notBase64) {
      return false;
    }
  }
}
