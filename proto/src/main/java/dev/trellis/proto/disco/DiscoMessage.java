package dev.trellis.proto.disco;

import dev.trellis.proto.wireguard.ChaChaPoly;
import dev.trellis.proto.wireguard.Curve25519;
import dev.trellis.proto.wireguard.NoiseHash;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Path-discovery messages: how two nodes find out whether a direct UDP path works between them.
 * They travel on the WireGuard UDP socket (direct) or inside relay packets, and only the two nodes
 * can make or read them: each is sealed with a key both derive from their node keys.
 *
 * <pre>
 * magic "TRLSDSC1" (8) | sender node public key (32) | nonce (8) | ChaCha20-Poly1305(payload) (n+16)
 *   key   = BLAKE2s("trellis disco v1" || X25519(own node private key, other node public key))
 *   nonce = 32 zero bits || the 8 nonce bytes (random per message)
 * payload:
 *   1 Ping        | txid (12)
 *   2 Pong        | txid (12) | the address the ping came from, as "ip:port" (UTF-8, rest of payload)
 *   3 CallMeMaybe | our candidate endpoints, "ip:port" separated by '\n' (asks the peer to ping
 *                   them now, so both sides' NATs and stateful firewalls open at the same time)
 * </pre>
 */
public sealed interface DiscoMessage {
  byte[] MAGIC = {'T', 'R', 'L', 'S', 'D', 'S', 'C', '1'};
  int KEY_LENGTH = 32;
  int NONCE_LENGTH = 8;
  int HEADER_LENGTH = MAGIC.length + KEY_LENGTH + NONCE_LENGTH;
  int TXID_LENGTH = 12;

  /** Candidate lists and addresses are short; anything bigger is not ours. */
  int MAX_PAYLOAD = 1024;

  byte[] KEY_LABEL = "trellis disco v1".getBytes(StandardCharsets.US_ASCII);
  byte TYPE_PING = 1;
  byte TYPE_PONG = 2;
  byte TYPE_CALL_ME_MAYBE = 3;

  record Ping(byte[] txid) implements DiscoMessage {}

  record Pong(byte[] txid, String observedSource) implements DiscoMessage {}

  record CallMeMaybe(List<String> endpoints) implements DiscoMessage {}

  /** A message opened and authenticated as coming from {@code sender}. */
  record Opened(byte[] sender, DiscoMessage message) {}

  static byte[] newTxid() {
    byte[] txid = new byte[TXID_LENGTH];
    Holder.RANDOM.nextBytes(txid);
    return txid;
  }

  /** The symmetric key two nodes share; the caller caches it per peer. */
  static byte[] sharedKey(byte[] ownPrivate, byte[] otherPublic) {
    byte[] dh = Curve25519.sharedSecret(ownPrivate, otherPublic);
    return dh == null ? null : NoiseHash.hash(KEY_LABEL, dh);
  }

  static boolean looksLikeDisco(byte[] buf, int length) {
    return length >= HEADER_LENGTH + 1 + ChaChaPoly.TAG_LENGTH
        && Arrays.equals(buf, 0, MAGIC.length, MAGIC, 0, MAGIC.length);
  }

  /**
   * The sender key of a disco datagram, so the receiver can pick the shared key; null if malformed.
   */
  static byte[] senderOf(byte[] buf, int length) {
    return looksLikeDisco(buf, length)
        ? Arrays.copyOfRange(buf, MAGIC.length, MAGIC.length + KEY_LENGTH)
        : null;
  }

  static byte[] seal(DiscoMessage message, byte[] ownPublic, byte[] sharedKey) {
    byte[] payload = payload(message);
    byte[] nonce = new byte[NONCE_LENGTH];
    Holder.RANDOM.nextBytes(nonce);
    long counter = 0;
    for (int i = NONCE_LENGTH - 1; i >= 0; i--) {
      counter = (counter << 8) | (nonce[i] & 0xff);
    }
    byte[] out = new byte[HEADER_LENGTH + payload.length + ChaChaPoly.TAG_LENGTH];
    System.arraycopy(MAGIC, 0, out, 0, MAGIC.length);
    System.arraycopy(ownPublic, 0, out, MAGIC.length, KEY_LENGTH);
    System.arraycopy(nonce, 0, out, MAGIC.length + KEY_LENGTH, NONCE_LENGTH);
    new ChaChaPoly()
        .seal(
            ChaChaPoly.key(sharedKey),
            counter,
            payload,
            0,
            payload.length,
            header(out),
            out,
            HEADER_LENGTH);
    return out;
  }

  /** Authenticates and parses; null for anything forged, malformed or not for {@code sharedKey}. */
  static Opened open(byte[] buf, int length, byte[] sharedKey) {
    if (!looksLikeDisco(buf, length)
        || length > HEADER_LENGTH + MAX_PAYLOAD + ChaChaPoly.TAG_LENGTH) {
      return null;
    }
    long counter = 0;
    for (int i = NONCE_LENGTH - 1; i >= 0; i--) {
      counter = (counter << 8) | (buf[MAGIC.length + KEY_LENGTH + i] & 0xff);
    }
    byte[] payload = new byte[length - HEADER_LENGTH - ChaChaPoly.TAG_LENGTH];
    int n =
        new ChaChaPoly()
            .open(
                ChaChaPoly.key(sharedKey),
                counter,
                buf,
                HEADER_LENGTH,
                length - HEADER_LENGTH,
                header(buf),
                payload,
                0);
    if (n < 0) {
      return null;
    }
    DiscoMessage message = parse(payload);
    return message == null ? null : new Opened(senderOf(buf, length), message);
  }

  /** The header is authenticated too, so nobody can swap the sender key. */
  private static byte[] header(byte[] buf) {
    return Arrays.copyOf(buf, HEADER_LENGTH);
  }

  private static byte[] payload(DiscoMessage message) {
    return switch (message) {
      case Ping p -> concat(new byte[] {TYPE_PING}, checkTxid(p.txid()));
      case Pong p ->
          concat(
              new byte[] {TYPE_PONG},
              checkTxid(p.txid()),
              p.observedSource().getBytes(StandardCharsets.UTF_8));
      case CallMeMaybe c ->
          concat(
              new byte[] {TYPE_CALL_ME_MAYBE},
              String.join("\n", c.endpoints()).getBytes(StandardCharsets.UTF_8));
    };
  }

  private static DiscoMessage parse(byte[] payload) {
    if (payload.length < 1) {
      return null;
    }
    return switch (payload[0]) {
      case TYPE_PING ->
          payload.length == 1 + TXID_LENGTH
              ? new Ping(Arrays.copyOfRange(payload, 1, payload.length))
              : null;
      case TYPE_PONG ->
          payload.length > 1 + TXID_LENGTH
              ? new Pong(
                  Arrays.copyOfRange(payload, 1, 1 + TXID_LENGTH),
                  new String(
                      payload,
                      1 + TXID_LENGTH,
                      payload.length - 1 - TXID_LENGTH,
                      StandardCharsets.UTF_8))
              : null;
      case TYPE_CALL_ME_MAYBE -> {
        String text = new String(payload, 1, payload.length - 1, StandardCharsets.UTF_8);
        List<String> endpoints = new ArrayList<>();
        for (String e : text.split("\n")) {
          if (!e.isBlank()) {
            endpoints.add(e);
          }
        }
        yield new CallMeMaybe(List.copyOf(endpoints));
      }
      default -> null;
    };
  }

  private static byte[] checkTxid(byte[] txid) {
    if (txid.length != TXID_LENGTH) {
      throw new IllegalArgumentException("txid must be " + TXID_LENGTH + " bytes");
    }
    return txid;
  }

  private static byte[] concat(byte[]... parts) {
    int total = 0;
    for (byte[] p : parts) total += p.length;
    byte[] out = new byte[total];
    int off = 0;
    for (byte[] p : parts) {
      System.arraycopy(p, 0, out, off, p.length);
      off += p.length;
    }
    return out;
  }

  /** Lazily created, shared randomness for nonces and transaction ids. */
  final class Holder {
    static final SecureRandom RANDOM = new SecureRandom();

    private Holder() {}
  }
}
