package dev.trellis.proto.wireguard;

import java.util.Arrays;

/**
 * WireGuard's four messages on the wire (UDP payloads). Integers are little-endian; every message
 * starts with a one-byte type and three reserved zero bytes.
 *
 * <pre>
 * 1 HandshakeInitiation, 148 bytes
 *   0 type=1 | 1 reserved[3] | 4 sender u32 | 8 ephemeral[32] | 40 static[32+16]
 *   | 88 timestamp[12+16] | 116 mac1[16] | 132 mac2[16]
 * 2 HandshakeResponse, 92 bytes
 *   0 type=2 | 1 reserved[3] | 4 sender u32 | 8 receiver u32 | 12 ephemeral[32]
 *   | 44 empty[0+16] | 60 mac1[16] | 76 mac2[16]
 * 3 CookieReply, 64 bytes
 *   0 type=3 | 1 reserved[3] | 4 receiver u32 | 8 nonce[24] | 32 cookie[16+16]
 * 4 TransportData, 32 + n bytes (n a multiple of 16, zero for a keepalive)
 *   0 type=4 | 1 reserved[3] | 4 receiver u32 | 8 counter u64 | 16 packet[n+16]
 * </pre>
 *
 * mac1 covers every byte before it; mac2 every byte before mac2. "[x+16]" is x bytes of AEAD
 * ciphertext followed by its Poly1305 tag.
 */
public sealed interface Message {
  byte TYPE_INITIATION = 1;
  byte TYPE_RESPONSE = 2;
  byte TYPE_COOKIE_REPLY = 3;
  byte TYPE_TRANSPORT = 4;

  int INITIATION_LENGTH = 148;
  int RESPONSE_LENGTH = 92;
  int COOKIE_REPLY_LENGTH = 64;
  int TRANSPORT_HEADER_LENGTH = 16;
  int TRANSPORT_MIN_LENGTH = TRANSPORT_HEADER_LENGTH + ChaChaPoly.TAG_LENGTH;
  int TRANSPORT_OFFSET_RECEIVER = 4;
  int TRANSPORT_OFFSET_COUNTER = 8;

  /** Transport payloads are padded to a multiple of this. */
  int PADDING_MULTIPLE = 16;

  /** The message's bytes on the wire. */
  byte[] encode();

  /**
   * Type byte of a datagram, or -1 when it cannot be a WireGuard message (wrong length or reserved
   * bytes).
   */
  static int typeOf(byte[] buf, int off, int len) {
    if (len < 4 || buf[off + 1] != 0 || buf[off + 2] != 0 || buf[off + 3] != 0) {
      return -1;
    }
    int type = buf[off];
    return switch (type) {
      case TYPE_INITIATION -> len == INITIATION_LENGTH ? type : -1;
      case TYPE_RESPONSE -> len == RESPONSE_LENGTH ? type : -1;
      case TYPE_COOKIE_REPLY -> len == COOKIE_REPLY_LENGTH ? type : -1;
      case TYPE_TRANSPORT -> len >= TRANSPORT_MIN_LENGTH ? type : -1;
      default -> -1;
    };
  }

  record HandshakeInitiation(
      int sender,
      byte[] ephemeral,
      byte[] encryptedStatic,
      byte[] encryptedTimestamp,
      byte[] mac1,
      byte[] mac2)
      implements Message {
    public static final int OFFSET_MAC1 = 116;
    public static final int OFFSET_MAC2 = 132;

    public static HandshakeInitiation parse(byte[] b, int off, int len) {
      if (typeOf(b, off, len) != TYPE_INITIATION) {
        return null;
      }
      return new HandshakeInitiation(
          readInt(b, off + 4),
          slice(b, off + 8, 32),
          slice(b, off + 40, 48),
          slice(b, off + 88, 28),
          slice(b, off + 116, 16),
          slice(b, off + 132, 16));
    }

    @Override
    public byte[] encode() {
      byte[] out = new byte[INITIATION_LENGTH];
      out[0] = TYPE_INITIATION;
      writeInt(out, 4, sender);
      put(out, 8, ephemeral, 32);
      put(out, 40, encryptedStatic, 48);
      put(out, 88, encryptedTimestamp, 28);
      put(out, 116, mac1, 16);
      put(out, 132, mac2, 16);
      return out;
    }
  }

  record HandshakeResponse(
      int sender, int receiver, byte[] ephemeral, byte[] encryptedNothing, byte[] mac1, byte[] mac2)
      implements Message {
    public static final int OFFSET_MAC1 = 60;
    public static final int OFFSET_MAC2 = 76;

    public static HandshakeResponse parse(byte[] b, int off, int len) {
      if (typeOf(b, off, len) != TYPE_RESPONSE) {
        return null;
      }
      return new HandshakeResponse(
          readInt(b, off + 4),
          readInt(b, off + 8),
          slice(b, off + 12, 32),
          slice(b, off + 44, 16),
          slice(b, off + 60, 16),
          slice(b, off + 76, 16));
    }

    @Override
    public byte[] encode() {
      byte[] out = new byte[RESPONSE_LENGTH];
      out[0] = TYPE_RESPONSE;
      writeInt(out, 4, sender);
      writeInt(out, 8, receiver);
      put(out, 12, ephemeral, 32);
      put(out, 44, encryptedNothing, 16);
      put(out, 60, mac1, 16);
      put(out, 76, mac2, 16);
      return out;
    }
  }

  record CookieReply(int receiver, byte[] nonce, byte[] encryptedCookie) implements Message {
    public static CookieReply parse(byte[] b, int off, int len) {
      if (typeOf(b, off, len) != TYPE_COOKIE_REPLY) {
        return null;
      }
      return new CookieReply(readInt(b, off + 4), slice(b, off + 8, 24), slice(b, off + 32, 32));
    }

    @Override
    public byte[] encode() {
      byte[] out = new byte[COOKIE_REPLY_LENGTH];
      out[0] = TYPE_COOKIE_REPLY;
      writeInt(out, 4, receiver);
      put(out, 8, nonce, 24);
      put(out, 32, encryptedCookie, 32);
      return out;
    }
  }

  /**
   * Transport data is sealed and opened in place on the packet path; this record is for tests and
   * tools.
   */
  record TransportData(int receiver, long counter, byte[] encryptedPacket) implements Message {
    public static TransportData parse(byte[] b, int off, int len) {
      if (typeOf(b, off, len) != TYPE_TRANSPORT) {
        return null;
      }
      return new TransportData(
          readInt(b, off + 4), readLong(b, off + 8), slice(b, off + 16, len - 16));
    }

    @Override
    public byte[] encode() {
      byte[] out = new byte[TRANSPORT_HEADER_LENGTH + encryptedPacket.length];
      writeTransportHeader(out, 0, receiver, counter);
      System.arraycopy(encryptedPacket, 0, out, 16, encryptedPacket.length);
      return out;
    }
  }

  static void writeTransportHeader(byte[] out, int off, int receiver, long counter) {
    out[off] = TYPE_TRANSPORT;
    out[off + 1] = 0;
    out[off + 2] = 0;
    out[off + 3] = 0;
    writeInt(out, off + 4, receiver);
    writeLong(out, off + 8, counter);
  }

  static int readInt(byte[] b, int off) {
    return (b[off] & 0xff)
        | (b[off + 1] & 0xff) << 8
        | (b[off + 2] & 0xff) << 16
        | (b[off + 3] & 0xff) << 24;
  }

  static long readLong(byte[] b, int off) {
    return (readInt(b, off) & 0xffffffffL) | ((long) readInt(b, off + 4)) << 32;
  }

  static void writeInt(byte[] b, int off, int v) {
    b[off] = (byte) v;
    b[off + 1] = (byte) (v >>> 8);
    b[off + 2] = (byte) (v >>> 16);
    b[off + 3] = (byte) (v >>> 24);
  }

  static void writeLong(byte[] b, int off, long v) {
    writeInt(b, off, (int) v);
    writeInt(b, off + 4, (int) (v >>> 32));
  }

  private static byte[] slice(byte[] b, int off, int len) {
    return Arrays.copyOfRange(b, off, off + len);
  }

  private static void put(byte[] out, int off, byte[] field, int len) {
    if (field.length != len) {
      throw new IllegalArgumentException("field must be " + len + " bytes, got " + field.length);
    }
    System.arraycopy(field, 0, out, off, len);
  }
}
