package dev.trellis.proto.stun;

import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.zip.CRC32;

/**
 * A STUN message (RFC 8489), as much of it as a Binding server and client without credentials need.
 *
 * <h2>Wire format</h2>
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |0 0|     STUN Message Type     |         Message Length        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                   Magic Cookie (0x2112A442)                   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                Transaction ID (96 bits)                       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * </pre>
 *
 * All integers are big-endian. The 14-bit message type interleaves a 12-bit method (Binding is
 * 0x001) with a 2-bit class: bits M11..M7 C1 M6..M4 C0 M3..M0, so a Binding request is 0x0001, a
 * success response 0x0101, an error response 0x0111 and an indication 0x0011. The message length
 * counts the bytes after the 20-byte header and is always a multiple of 4.
 *
 * <p>RFC 3489 ("classic STUN") had no magic cookie: those 32 bits were the first part of a 128-bit
 * transaction id. A message whose cookie field is not 0x2112A442 is parsed as classic; {@link
 * #cookie()} keeps the field so a reply can echo it ({@link #isClassic()}).
 *
 * <p>After the header come attributes, each a TLV: a 16-bit type, a 16-bit length of the value
 * (before padding) and the value, padded with up to three bytes to a multiple of 4 (padding is
 * written as zeros and ignored when read). Types 0x0000-0x7FFF are comprehension-required (a
 * receiver that does not understand one must reject the request with 420 and UNKNOWN-ATTRIBUTES);
 * 0x8000-0xFFFF are comprehension-optional. The attributes this class reads and writes:
 *
 * <ul>
 *   <li>MAPPED-ADDRESS (0x0001): 8 bits zero, 8-bit family (0x01 IPv4, 0x02 IPv6), 16-bit port,
 *       then the 4- or 16-byte address, in the clear. Only RFC 3489 clients need it.
 *   <li>XOR-MAPPED-ADDRESS (0x0020): the same layout, but the port is XORed with the top 16 bits of
 *       the magic cookie, an IPv4 address with the cookie and an IPv6 address with the cookie
 *       followed by the transaction id (so NAT "helpers" rewriting addresses they see in payloads
 *       leave it alone).
 *   <li>ERROR-CODE (0x0009): 21 zero bits, the hundreds digit of the code (3 bits, 3-6), the rest
 *       modulo 100 (8 bits, 0-99), then a UTF-8 reason phrase (at most 127 characters).
 *   <li>UNKNOWN-ATTRIBUTES (0x000A): a list of 16-bit attribute types.
 *   <li>SOFTWARE (0x8022): UTF-8 description of the agent, fewer than 128 characters.
 *   <li>FINGERPRINT (0x8028): CRC-32 (the one of ISO 3309 / zip) of the message up to this
 *       attribute, computed with the header length already covering the FINGERPRINT attribute,
 *       XORed with 0x5354554E. It is always the last attribute; attributes after it are ignored
 *       when read.
 * </ul>
 *
 * Other attributes are kept as raw {@link Attribute}s. MESSAGE-INTEGRITY is neither checked nor
 * produced: a Binding server without credentials has no key to check it with.
 *
 * <p>{@link #parse} accepts exactly one message filling the whole buffer (a UDP datagram) and
 * throws {@link StunException} for anything malformed; {@link #tryParse} returns null instead.
 * Neither ever throws anything else, whatever the input.
 */
public final class StunMessage {
  public static final int MAGIC_COOKIE = 0x2112A442;
  public static final int HEADER_LENGTH = 20;
  public static final int TRANSACTION_ID_LENGTH = 12;

  /** FINGERPRINT's XOR constant: "STUN" in ASCII. */
  public static final int FINGERPRINT_XOR = 0x5354554E;

  public static final int METHOD_BINDING = 0x001;

  public static final int MAPPED_ADDRESS = 0x0001;

  /** RFC 3489 (reserved in RFC 8489): asks for the response to go elsewhere. */
  public static final int RESPONSE_ADDRESS = 0x0002;

  /** RFC 3489 / RFC 5780: asks for the response from another IP and/or port. */
  public static final int CHANGE_REQUEST = 0x0003;

  /** RFC 3489: the address the response was sent from. */
  public static final int SOURCE_ADDRESS = 0x0004;

  /** RFC 3489: the address a CHANGE-REQUEST response would come from. */
  public static final int CHANGED_ADDRESS = 0x0005;

  public static final int USERNAME = 0x0006;
  public static final int MESSAGE_INTEGRITY = 0x0008;
  public static final int ERROR_CODE = 0x0009;
  public static final int UNKNOWN_ATTRIBUTES = 0x000A;
  public static final int REALM = 0x0014;
  public static final int NONCE = 0x0015;
  public static final int MESSAGE_INTEGRITY_SHA256 = 0x001C;
  public static final int USERHASH = 0x001E;
  public static final int XOR_MAPPED_ADDRESS = 0x0020;

  /** RFC 8445 (ICE). */
  public static final int PRIORITY = 0x0024;

  /** RFC 8445 (ICE). */
  public static final int USE_CANDIDATE = 0x0025;

  public static final int SOFTWARE = 0x8022;
  public static final int FINGERPRINT = 0x8028;

  private static final int FAMILY_IPV4 = 0x01;
  private static final int FAMILY_IPV6 = 0x02;
  private static final int MAX_REASON_CHARS = 127;
  private static final int MAX_SOFTWARE_CHARS = 127;
  private static final SecureRandom RANDOM = new SecureRandom();

  /** The message class (the two C bits of the message type). */
  public enum MessageClass {
    REQUEST,
    INDICATION,
    SUCCESS_RESPONSE,
    ERROR_RESPONSE;

    static MessageClass of(int bits) {
      return values()[bits];
    }
  }

  /** One attribute: its type and its value without padding. */
  public record Attribute(int type, byte[] value) {
    public Attribute {
      if (type < 0 || type > 0xFFFF) {
        throw new IllegalArgumentException("attribute type out of range: " + type);
      }
      Objects.requireNonNull(value, "value");
      if (value.length > 0xFFFF) {
        throw new IllegalArgumentException("attribute value too long: " + value.length);
      }
    }

    /** True for types 0x0000-0x7FFF, which a receiver must understand or reject. */
    public boolean comprehensionRequired() {
      return isComprehensionRequired(type);
    }

    public static Attribute mappedAddress(InetSocketAddress address) {
      return new Attribute(MAPPED_ADDRESS, encodeAddress(address, null));
    }

    /**
     * An RFC 3489 address attribute (SOURCE-ADDRESS, CHANGED-ADDRESS), laid out like
     * MAPPED-ADDRESS.
     */
    public static Attribute plainAddress(int type, InetSocketAddress address) {
      return new Attribute(type, encodeAddress(address, null));
    }

    public static Attribute xorMappedAddress(InetSocketAddress address, byte[] transactionId) {
      return new Attribute(XOR_MAPPED_ADDRESS, encodeAddress(address, xorMask(transactionId)));
    }

    public static Attribute software(String description) {
      if (description.codePointCount(0, description.length()) > MAX_SOFTWARE_CHARS) {
        throw new IllegalArgumentException("SOFTWARE must be shorter than 128 characters");
      }
      return new Attribute(SOFTWARE, description.getBytes(StandardCharsets.UTF_8));
    }

    public static Attribute errorCode(int code, String reason) {
      if (code < 300 || code > 699) {
        throw new IllegalArgumentException("error code must be 300-699, got " + code);
      }
      if (reason.codePointCount(0, reason.length()) > MAX_REASON_CHARS) {
        throw new IllegalArgumentException("reason phrase must be shorter than 128 characters");
      }
      byte[] text = reason.getBytes(StandardCharsets.UTF_8);
      byte[] value = new byte[4 + text.length];
      value[2] = (byte) (code / 100);
      value[3] = (byte) (code % 100);
      System.arraycopy(text, 0, value, 4, text.length);
      return new Attribute(ERROR_CODE, value);
    }

    public static Attribute unknownAttributes(List<Integer> types) {
      byte[] value = new byte[types.size() * 2];
      for (int i = 0; i < types.size(); i++) {
        putShort(value, i * 2, types.get(i));
      }
      return new Attribute(UNKNOWN_ATTRIBUTES, value);
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Attribute a && a.type == type && Arrays.equals(a.value, value);
    }

    @Override
    public int hashCode() {
      return type * 31 + Arrays.hashCode(value);
    }

    @Override
    public String toString() {
      return String.format("Attribute[0x%04X, %s]", type, HexFormat.of().formatHex(value));
    }
  }

  /** Bytes that are not a well-formed STUN message, or an attribute value that does not decode. */
  public static final class StunException extends IllegalArgumentException {
    public StunException(String message) {
      super(message);
    }

    public StunException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /** An ERROR-CODE value. */
  public record ErrorCode(int code, String reason) {}

  private final int method;
  private final MessageClass messageClass;
  private final int cookie;
  private final byte[] transactionId;
  private final List<Attribute> attributes;
  private final boolean fingerprinted;

  /** A message with the magic cookie. */
  public StunMessage(
      int method, MessageClass messageClass, byte[] transactionId, List<Attribute> attributes) {
    this(method, messageClass, MAGIC_COOKIE, transactionId, attributes, false);
  }

  /**
   * {@code cookie} other than {@link #MAGIC_COOKIE} makes an RFC 3489 message (for replies to
   * classic clients).
   */
  public StunMessage(
      int method,
      MessageClass messageClass,
      int cookie,
      byte[] transactionId,
      List<Attribute> attributes) {
    this(method, messageClass, cookie, transactionId, attributes, false);
  }

  private StunMessage(
      int method,
      MessageClass messageClass,
      int cookie,
      byte[] transactionId,
      List<Attribute> attributes,
      boolean fingerprinted) {
    if (method < 0 || method > 0xFFF) {
      throw new IllegalArgumentException("method out of range: " + method);
    }
    if (transactionId.length != TRANSACTION_ID_LENGTH) {
      throw new IllegalArgumentException("transaction id must be 12 bytes");
    }
    this.method = method;
    this.messageClass = Objects.requireNonNull(messageClass);
    this.cookie = cookie;
    this.transactionId = transactionId.clone();
    this.attributes = List.copyOf(attributes);
    this.fingerprinted = fingerprinted;
  }

  /** A fresh, cryptographically random 96-bit transaction id. */
  public static byte[] newTransactionId() {
    byte[] id = new byte[TRANSACTION_ID_LENGTH];
    RANDOM.nextBytes(id);
    return id;
  }

  /** A Binding request with a new transaction id and no attributes. */
  public static StunMessage bindingRequest() {
    return new StunMessage(METHOD_BINDING, MessageClass.REQUEST, newTransactionId(), List.of());
  }

  public int method() {
    return method;
  }

  public MessageClass messageClass() {
    return messageClass;
  }

  /**
   * The 32 bits after the length: {@link #MAGIC_COOKIE}, or for RFC 3489 messages the start of the
   * transaction id.
   */
  public int cookie() {
    return cookie;
  }

  public boolean isClassic() {
    return cookie != MAGIC_COOKIE;
  }

  public byte[] transactionId() {
    return transactionId.clone();
  }

  public boolean hasTransactionId(byte[] id) {
    return Arrays.equals(transactionId, id);
  }

  /** The attributes in order, FINGERPRINT excluded (see {@link #fingerprinted()}). */
  public List<Attribute> attributes() {
    return attributes;
  }

  /** Whether the parsed message carried a (valid) FINGERPRINT. */
  public boolean fingerprinted() {
    return fingerprinted;
  }

  public boolean isBindingRequest() {
    return method == METHOD_BINDING && messageClass == MessageClass.REQUEST;
  }

  /** The first attribute of {@code type}, or null. */
  public Attribute attribute(int type) {
    for (Attribute a : attributes) {
      if (a.type == type) {
        return a;
      }
    }
    return null;
  }

  /** XOR-MAPPED-ADDRESS, or null when absent; a malformed one throws {@link StunException}. */
  public InetSocketAddress xorMappedAddress() {
    Attribute a = attribute(XOR_MAPPED_ADDRESS);
    return a == null ? null : decodeAddress("XOR-MAPPED-ADDRESS", a.value, xorMask(transactionId));
  }

  /** MAPPED-ADDRESS, or null when absent; a malformed one throws {@link StunException}. */
  public InetSocketAddress mappedAddress() {
    Attribute a = attribute(MAPPED_ADDRESS);
    return a == null ? null : decodeAddress("MAPPED-ADDRESS", a.value, null);
  }

  /** XOR-MAPPED-ADDRESS if present, else MAPPED-ADDRESS (RFC 3489 servers), else null. */
  public InetSocketAddress reflexiveAddress() {
    InetSocketAddress xor = xorMappedAddress();
    return xor != null ? xor : mappedAddress();
  }

  /** SOFTWARE, or null. */
  public String software() {
    Attribute a = attribute(SOFTWARE);
    return a == null ? null : new String(a.value, StandardCharsets.UTF_8);
  }

  /** ERROR-CODE, or null; a malformed one throws {@link StunException}. */
  public ErrorCode errorCode() {
    Attribute a = attribute(ERROR_CODE);
    if (a == null) {
      return null;
    }
    if (a.value.length < 4) {
      throw new StunException("ERROR-CODE shorter than 4 bytes");
    }
    int hundreds = a.value[2] & 0x07;
    int rest = a.value[3] & 0xFF;
    if (hundreds < 3 || hundreds > 6 || rest > 99) {
      throw new StunException("ERROR-CODE out of range: class " + hundreds + ", number " + rest);
    }
    return new ErrorCode(
        hundreds * 100 + rest, new String(a.value, 4, a.value.length - 4, StandardCharsets.UTF_8));
  }

  /** UNKNOWN-ATTRIBUTES, or an empty list; a malformed one throws {@link StunException}. */
  public List<Integer> unknownAttributes() {
    Attribute a = attribute(UNKNOWN_ATTRIBUTES);
    if (a == null) {
      return List.of();
    }
    if (a.value.length % 2 != 0) {
      throw new StunException("UNKNOWN-ATTRIBUTES length " + a.value.length + " is odd");
    }
    List<Integer> types = new ArrayList<>(a.value.length / 2);
    for (int i = 0; i < a.value.length; i += 2) {
      types.add(getShort(a.value, i));
    }
    return List.copyOf(types);
  }

  public static boolean isComprehensionRequired(int type) {
    return type < 0x8000;
  }

  /** Encodes the message; with {@code fingerprint}, FINGERPRINT is appended last. */
  public byte[] encode(boolean fingerprint) {
    int length = 0;
    for (Attribute a : attributes) {
      length += 4 + padded(a.value.length);
    }
    if (fingerprint) {
      length += 8;
    }
    if (length > 0xFFFF) {
      throw new IllegalStateException("STUN message too long: " + length);
    }
    byte[] out = new byte[HEADER_LENGTH + length];
    putShort(out, 0, encodeType(method, messageClass));
    putShort(out, 2, length);
    putInt(out, 4, cookie);
    System.arraycopy(transactionId, 0, out, 8, TRANSACTION_ID_LENGTH);
    int at = HEADER_LENGTH;
    for (Attribute a : attributes) {
      putShort(out, at, a.type);
      putShort(out, at + 2, a.value.length);
      System.arraycopy(a.value, 0, out, at + 4, a.value.length);
      at += 4 + padded(a.value.length);
    }
    if (fingerprint) {
      putShort(out, at, FINGERPRINT);
      putShort(out, at + 2, 4);
      putInt(out, at + 4, fingerprintOf(out, 0, at));
    }
    return out;
  }

  /**
   * Parses {@code data}; null instead of an exception for anything that is not one valid STUN
   * message.
   */
  public static StunMessage tryParse(byte[] data, int offset, int length) {
    try {
      return parse(data, offset, length);
    } catch (StunException e) {
      return null;
    }
  }

  public static StunMessage parse(byte[] data) {
    return parse(data, 0, data.length);
  }

  /**
   * Parses exactly one message filling {@code data[offset, offset + length)}. Throws {@link
   * StunException} when the bytes are not a well-formed STUN message, or carry a FINGERPRINT that
   * does not match.
   */
  public static StunMessage parse(byte[] data, int offset, int length) {
    if (data == null || offset < 0 || length < 0 || offset > data.length - length) {
      throw new StunException("bad buffer bounds");
    }
    if (length < HEADER_LENGTH) {
      throw new StunException("truncated: " + length + " bytes is shorter than the 20-byte header");
    }
    int type = getShort(data, offset);
    if ((type & 0xC000) != 0) {
      throw new StunException("not STUN: the two most significant bits are not zero");
    }
    int bodyLength = getShort(data, offset + 2);
    if (bodyLength % 4 != 0) {
      throw new StunException("message length " + bodyLength + " is not a multiple of 4");
    }
    if (HEADER_LENGTH + bodyLength != length) {
      throw new StunException(
          (HEADER_LENGTH + bodyLength > length ? "truncated" : "trailing bytes")
              + ": header says "
              + (HEADER_LENGTH + bodyLength)
              + " bytes, got "
              + length);
    }
    int cookie = getInt(data, offset + 4);
    byte[] transactionId = Arrays.copyOfRange(data, offset + 8, offset + HEADER_LENGTH);
    List<Attribute> attributes = new ArrayList<>();
    boolean fingerprinted = false;
    int at = offset + HEADER_LENGTH;
    int end = offset + length;
    while (at < end) {
      if (end - at < 4) {
        throw new StunException("truncated attribute header at offset " + (at - offset));
      }
      int attrType = getShort(data, at);
      int attrLength = getShort(data, at + 2);
      if (padded(attrLength) > end - at - 4) {
        throw new StunException(
            String.format(
                "attribute 0x%04X at offset %d: length %d runs past the end",
                attrType, at - offset, attrLength));
      }
      if (attrType == FINGERPRINT) {
        if (attrLength != 4) {
          throw new StunException("FINGERPRINT length " + attrLength + " is not 4");
        }
        int expected = fingerprintOf(data, offset, at - offset);
        if (getInt(data, at + 4) != expected) {
          throw new StunException("FINGERPRINT does not match");
        }
        fingerprinted = true;
        break; // the last attribute: anything after it is ignored
      }
      attributes.add(
          new Attribute(attrType, Arrays.copyOfRange(data, at + 4, at + 4 + attrLength)));
      at += 4 + padded(attrLength);
    }
    int messageType = type;
    int method =
        (messageType & 0x000F) | ((messageType >> 1) & 0x0070) | ((messageType >> 2) & 0x0F80);
    int classBits = ((messageType >> 4) & 0x1) | ((messageType >> 7) & 0x2);
    return new StunMessage(
        method, MessageClass.of(classBits), cookie, transactionId, attributes, fingerprinted);
  }

  /**
   * A cheap test for demultiplexing: could {@code data} be an RFC 5389/8489 STUN message (top bits
   * zero, length consistent, magic cookie)? Does not parse attributes.
   */
  public static boolean looksLikeStun(byte[] data, int offset, int length) {
    if (data == null || offset < 0 || length < HEADER_LENGTH || offset > data.length - length) {
      return false;
    }
    int bodyLength = getShort(data, offset + 2);
    return (data[offset] & 0xC0) == 0
        && bodyLength % 4 == 0
        && HEADER_LENGTH + bodyLength == length
        && getInt(data, offset + 4) == MAGIC_COOKIE;
  }

  static int encodeType(int method, MessageClass cls) {
    int c = cls.ordinal();
    return (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((c & 1) << 4)
        | ((c & 2) << 7);
  }

  /**
   * FINGERPRINT over {@code data[offset, offset + upTo)}, as if the header's length field already
   * counted the FINGERPRINT attribute that follows (it is written into a copy of the header).
   */
  private static int fingerprintOf(byte[] data, int offset, int upTo) {
    byte[] header = Arrays.copyOfRange(data, offset, offset + HEADER_LENGTH);
    putShort(header, 2, upTo + 8 - HEADER_LENGTH);
    CRC32 crc = new CRC32();
    crc.update(header);
    crc.update(data, offset + HEADER_LENGTH, upTo - HEADER_LENGTH);
    return (int) crc.getValue() ^ FINGERPRINT_XOR;
  }

  /** Cookie then transaction id: the 16-byte XOR mask (only the first 4 apply to IPv4). */
  private static byte[] xorMask(byte[] transactionId) {
    byte[] mask = new byte[16];
    putInt(mask, 0, MAGIC_COOKIE);
    System.arraycopy(transactionId, 0, mask, 4, TRANSACTION_ID_LENGTH);
    return mask;
  }

  private static byte[] encodeAddress(InetSocketAddress address, byte[] mask) {
    if (address.isUnresolved()) {
      throw new IllegalArgumentException("address is unresolved: " + address);
    }
    byte[] ip = canonical(address.getAddress()).getAddress();
    byte[] value = new byte[4 + ip.length];
    value[1] = (byte) (ip.length == 4 ? FAMILY_IPV4 : FAMILY_IPV6);
    int port = address.getPort();
    if (mask != null) {
      port ^= (MAGIC_COOKIE >>> 16);
      for (int i = 0; i < ip.length; i++) {
        ip[i] ^= mask[i];
      }
    }
    putShort(value, 2, port);
    System.arraycopy(ip, 0, value, 4, ip.length);
    return value;
  }

  private static InetSocketAddress decodeAddress(String name, byte[] value, byte[] mask) {
    if (value.length < 4) {
      throw new StunException(name + " shorter than 4 bytes");
    }
    int family = value[1] & 0xFF;
    int addressLength =
        switch (family) {
          case FAMILY_IPV4 -> 4;
          case FAMILY_IPV6 -> 16;
          default -> throw new StunException(name + " has unknown address family " + family);
        };
    if (value.length != 4 + addressLength) {
      throw new StunException(name + " length " + value.length + " does not fit family " + family);
    }
    int port = getShort(value, 2);
    byte[] ip = Arrays.copyOfRange(value, 4, value.length);
    if (mask != null) {
      port ^= (MAGIC_COOKIE >>> 16);
      for (int i = 0; i < ip.length; i++) {
        ip[i] ^= mask[i];
      }
    }
    try {
      return new InetSocketAddress(InetAddress.getByAddress(ip), port);
    } catch (UnknownHostException e) {
      throw new StunException(name + ": bad address", e);
    }
  }

  /** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it stands for. */
  public static InetAddress canonical(InetAddress address) {
    if (address instanceof Inet6Address v6) {
      byte[] b = v6.getAddress();
      boolean mapped = b[10] == (byte) 0xFF && b[11] == (byte) 0xFF;
      for (int i = 0; i < 10 && mapped; i++) {
        mapped = b[i] == 0;
      }
      if (mapped) {
        try {
          return Inet4Address.getByAddress(Arrays.copyOfRange(b, 12, 16));
        } catch (UnknownHostException e) {
          throw new AssertionError(e);
        }
      }
    }
    return address;
  }

  private static int padded(int length) {
    return (length + 3) & ~3;
  }

  private static int getShort(byte[] b, int at) {
    return ((b[at] & 0xFF) << 8) | (b[at + 1] & 0xFF);
  }

  private static int getInt(byte[] b, int at) {
    return (getShort(b, at) << 16) | getShort(b, at + 2);
  }

  private static void putShort(byte[] b, int at, int v) {
    b[at] = (byte) (v >>> 8);
    b[at + 1] = (byte) v;
  }

  private static void putInt(byte[] b, int at, int v) {
    putShort(b, at, v >>> 16);
    putShort(b, at + 2, v);
  }

  @Override
  public String toString() {
    return String.format(
        "StunMessage[method=0x%03X, %s, %s%s, %s%s]",
        method,
        messageClass,
        isClassic() ? "classic " : "",
        HexFormat.of().formatHex(transactionId),
        attributes,
        fingerprinted ? ", FINGERPRINT" : "");
  }
}
