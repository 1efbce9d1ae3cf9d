package dev.trellis.control;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.HexFormat;

/**
 * Bearer secrets of the form {@code <kind-prefix><12-char public id>-<32 hex>}. Only the SHA-256 of
 * a whole secret is ever stored.
 */
public final class Secrets {

  public static final int ID_LENGTH = 12;
  private static final int RANDOM_HEX_LENGTH = 32;
  private static final String ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
  private static final SecureRandom RANDOM = new SecureRandom();

  private Secrets() {}

  public static String newId() {
    StringBuilder id = new StringBuilder(ID_LENGTH);
    for (int i = 0; i < ID_LENGTH; i++)
      id.append(ID_ALPHABET.charAt(RANDOM.nextInt(ID_ALPHABET.length())));
    return id.toString();
  }

  public static String newSecret(String kindPrefix, String id) {
    byte[] random = new byte[RANDOM_HEX_LENGTH / 2];
    RANDOM.nextBytes(random);
    return kindPrefix + id + "-" + HexFormat.of().formatHex(random);
  }

  /** The public id inside a well-formed secret, or null if it is not one of this kind. */
  public static String idOf(String kindPrefix, String secret) {
    if (secret == null
        || secret.length() != kindPrefix.length() + ID_LENGTH + 1 + RANDOM_HEX_LENGTH) return null;
    if (!secret.startsWith(kindPrefix) || secret.charAt(kindPrefix.length() + ID_LENGTH) != '-')
      return null;
    String id = secret.substring(kindPrefix.length(), kindPrefix.length() + ID_LENGTH);
    for (int i = 0; i < id.length(); i++) if (ID_ALPHABET.indexOf(id.charAt(i)) < 0) return null;
    String random = secret.substring(kindPrefix.length() + ID_LENGTH + 1);
    for (int i = 0; i < random.length(); i++)
      if (Character.digit(random.charAt(i), 16) < 0) return null;
    return id;
  }

  public static String sha256Hex(String secret) {
    try {
      byte[] digest =
          MessageDigest.getInstance("SHA-256").digest(secret.getBytes(StandardCharsets.UTF_8));
      return HexFormat.of().formatHex(digest);
    } catch (NoSuchAlgorithmException impossible) {
      throw new IllegalStateException(impossible);
    }
  }

  /** Compares a presented secret with a stored hash without leaking where they differ. */
  public static boolean matches(String secret, String storedSha256Hex) {
    byte[] presented = sha256Hex(secret).getBytes(StandardCharsets.US_ASCII);
    return MessageDigest.isEqual(presented, storedSha256Hex.getBytes(StandardCharsets.US_ASCII));
  }
}
