package dev.trellis.proto.wireguard;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Arrays;

/**
 * MAC1/MAC2 and the cookie mechanism that lets a responder under load demand proof of a sender's IP
 * address before spending Diffie-Hellman work on it. {@link Checker} is the receiving side (keyed
 * by our own public key), {@link Generator} the sending side, one per peer (keyed by the peer's).
 */
public final class Cookie {
  public static final byte[] LABEL_MAC1 = "mac1----".getBytes(StandardCharsets.US_ASCII);
  public static final byte[] LABEL_COOKIE = "cookie--".getBytes(StandardCharsets.US_ASCII);

  /** Both the responder's secret rotation and the initiator's cookie lifetime. */
  public static final long COOKIE_REFRESH_NANOS = 120_000_000_000L;

  private static final int MACS_LENGTH = 2 * NoiseHash.MAC_LENGTH;
  private static final SecureRandom RANDOM = new SecureRandom();

  private Cookie() {}

  /** Constant-time comparison of {@code expected} with {@code actual[off, off+expected.length)}. */
  static boolean macEquals(byte[] expected, byte[] actual, int off) {
    return MessageDigest.isEqual(expected, Arrays.copyOfRange(actual, off, off + expected.length));
  }

  /** Verifies MACs on messages to us and makes cookie replies. Thread-safe. */
  public static final class Checker {
    private final byte[] mac1Key;
    private final byte[] cookieKey;
    private final Object lock = new Object();
    private byte[] secret = new byte[32];
    private long secretCreatedNanos;

    /**
     * False until the first cookie reply draws a random secret (no sentinel time: nanoTime may be
     * any value).
     */
    private boolean haveSecret;

    public Checker(byte[] ourPublicKey) {
      mac1Key = NoiseHash.hash(LABEL_MAC1, ourPublicKey);
      cookieKey = NoiseHash.hash(LABEL_COOKIE, ourPublicKey);
    }

    /** MAC1 over everything before it; {@code msg[off, off+len)} is a whole handshake message. */
    public boolean checkMac1(byte[] msg, int off, int len) {
      int macOffset = off + len - MACS_LENGTH;
      return macEquals(NoiseHash.mac(mac1Key, msg, off, macOffset - off), msg, macOffset);
    }

    /**
     * MAC2 proves the sender recently received a cookie for {@code source} (address bytes + port).
     */
    public boolean checkMac2(byte[] msg, int off, int len, byte[] source, long nowNanos) {
      byte[] cookie;
      synchronized (lock) {
        if (!haveSecret || nowNanos - secretCreatedNanos > COOKIE_REFRESH_NANOS) {
          return false;
        }
        cookie = NoiseHash.mac(secret, source, 0, source.length);
      }
      int macOffset = off + len - NoiseHash.MAC_LENGTH;
      return macEquals(NoiseHash.mac(cookie, msg, off, macOffset - off), msg, macOffset);
    }

    /** The cookie reply to a handshake message whose MAC1 was valid. */
    public Message.CookieReply createReply(
        byte[] msg, int off, int len, int receiverIndex, byte[] source, long nowNanos) {
      byte[] cookie;
      synchronized (lock) {
        if (!haveSecret || nowNanos - secretCreatedNanos > COOKIE_REFRESH_NANOS) {
          secret = new byte[32];
          RANDOM.nextBytes(secret);
          secretCreatedNanos = nowNanos;
          haveSecret = true;
        }
        cookie = NoiseHash.mac(secret, source, 0, source.length);
      }
      byte[] nonce = new byte[XChaChaPoly.NONCE_LENGTH];
      RANDOM.nextBytes(nonce);
      int mac1Offset = off + len - MACS_LENGTH;
      byte[] mac1 = Arrays.copyOfRange(msg, mac1Offset, mac1Offset + NoiseHash.MAC_LENGTH);
      return new Message.CookieReply(
          receiverIndex, nonce, XChaChaPoly.seal(cookieKey, nonce, cookie, mac1));
    }
  }

  /** Adds MACs to our handshake messages for one peer and remembers the cookie it sent us. */
  public static final class Generator {
    private final byte[] mac1Key;
    private final byte[] cookieKey;
    private byte[] lastMac1;
    private byte[] cookie;
    private long cookieReceivedNanos;

    public Generator(byte[] peerPublicKey) {
      mac1Key = NoiseHash.hash(LABEL_MAC1, peerPublicKey);
      cookieKey = NoiseHash.hash(LABEL_COOKIE, peerPublicKey);
    }

    /** Fills in mac1 and, while we hold a fresh cookie, mac2 of an encoded handshake message. */
    public synchronized void addMacs(byte[] msg, long nowNanos) {
      int mac1Offset = msg.length - MACS_LENGTH;
      int mac2Offset = msg.length - NoiseHash.MAC_LENGTH;
      byte[] mac1 = NoiseHash.mac(mac1Key, msg, 0, mac1Offset);
      System.arraycopy(mac1, 0, msg, mac1Offset, mac1.length);
      lastMac1 = mac1;
      if (cookie != null && nowNanos - cookieReceivedNanos < COOKIE_REFRESH_NANOS) {
        byte[] mac2 = NoiseHash.mac(cookie, msg, 0, mac2Offset);
        System.arraycopy(mac2, 0, msg, mac2Offset, mac2.length);
      } else {
        Arrays.fill(msg, mac2Offset, msg.length, (byte) 0);
      }
    }

    /** Accepts a cookie reply to the last message we sent; false if it does not authenticate. */
    public synchronized boolean consumeReply(Message.CookieReply reply, long nowNanos) {
      if (lastMac1 == null) {
        return false;
      }
      byte[] opened = XChaChaPoly.open(cookieKey, reply.nonce(), reply.encryptedCookie(), lastMac1);
      if (opened == null) {
        return false;
      }
      cookie = opened;
      cookieReceivedNanos = nowNanos;
      return true;
    }

    public synchronized boolean hasFreshCookie(long nowNanos) {
      return cookie != null && nowNanos - cookieReceivedNanos < COOKIE_REFRESH_NANOS;
    }
  }
}
