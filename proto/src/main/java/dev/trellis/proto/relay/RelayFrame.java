package dev.trellis.proto.relay;

import dev.trellis.proto.wireguard.Curve25519;
import dev.trellis.proto.wireguard.NoiseHash;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Arrays;

/**
 * The relay protocol: how nodes exchange WireGuard packets through the coordination server when UDP
 * between them is blocked. The relay only ever sees WireGuard ciphertext; it forwards opaque
 * packets by destination node key.
 *
 * <p>Transports, both at {@code GET /relay} on the login server's port (http or https):
 *
 * <ul>
 *   <li>raw (what nodes use first): the request carries {@code Connection: Upgrade} and {@code
 *       Upgrade: trellis-relay}; after {@code 101 Switching Protocols} each frame on the connection
 *       is preceded by its length (4 bytes, big-endian, 1..{@link #MAX_FRAME});
 *   <li>WebSocket (for proxies that only pass WebSockets): every binary message is exactly one
 *       frame; text messages are a protocol error.
 * </ul>
 *
 * A frame is one type byte followed by its body; its length comes from the transport. Integers are
 * big-endian. Keys are raw 32-byte Curve25519 public keys (a node's WireGuard <em>node</em> key,
 * not its machine key).
 *
 * <pre>
 * type  name         direction       body
 * 0x01  ServerHello  relay → node    relay static public key (32) | challenge nonce (32)
 * 0x02  ClientAuth   node → relay    node public key (32) | proof (32)
 * 0x03  ServerReady  relay → node    (empty)
 * 0x04  SendPacket   node → relay    destination key (32) | packet (1..65535)
 * 0x05  RecvPacket   relay → node    source key (32) | packet (1..65535)
 * 0x06  KeepAlive    either          (empty)
 * 0x07  Ping         either          8 opaque bytes, answered by a Pong with the same bytes
 * 0x08  Pong         either          8 bytes
 * 0x09  PeerGone     relay → node    key (32) | reason (1): 0x00 disconnected, 0x01 not connected
 * 0x0a  Health       relay → node    UTF-8 text (0..65535 bytes); empty means healthy
 * 0x0b  Restarting   relay → node    reconnect in ms (u32) | try for ms (u32)
 * 0x0c  Error        relay → node    UTF-8 reason (0..65535 bytes); the relay then closes
 * 0x0d  SendSame     node → relay    packet (1..65535), for the destination of this connection's last SendPacket
 * 0x0e  RecvSame     relay → node    packet (1..65535), from the source of this connection's last RecvPacket
 * 0x0f  ForwardPacket relay → relay  source key (32) | destination key (32) | packet (1..65535)
 * </pre>
 *
 * <p>Relays of one cluster mesh: a relay that gets a packet for a node connected to another relay
 * of the cluster sends it there as ForwardPacket, over a connection it opened to that relay like a
 * node would, authenticating with its own relay key. The receiving relay accepts ForwardPacket only
 * on connections whose key is a relay of the live cluster, and only delivers it to its own nodes
 * (as RecvPacket from the source): a packet crosses at most one relay-to-relay hop.
 *
 * <p>SendSame and RecvSame save the 32-byte key on every packet of a stream to one peer (2 % of a
 * full-size packet): a sender uses them when the key equals the one in its previous packet frame on
 * that connection. One before any SendPacket (RecvPacket) is a protocol error.
 *
 * <p>Handshake: on connect the relay sends ServerHello with a fresh random challenge. The node
 * answers ClientAuth within 10 s with its node public key and {@code proof = HMAC-BLAKE2s(key =
 * X25519(nodePrivate, relayPublic), data = "trellis relay auth v1" || challenge || nodePublic)}.
 * The relay computes the same with {@code X25519(relayPrivate, nodePublic)}, compares in constant
 * time, checks that the key belongs to a registered, live node, and answers ServerReady — or Error,
 * then closes. Only ClientAuth is accepted before ServerReady. After it, the node sends SendPacket,
 * Ping, Pong and KeepAlive; anything else, a malformed or an oversized frame closes that node's
 * connection.
 *
 * <p>The largest frame is {@link #MAX_FRAME} bytes: a header (type + key) and a 65,535-byte packet.
 */
public final class RelayFrame {
  public static final int KEY_LENGTH = 32;
  public static final int NONCE_LENGTH = 32;
  public static final int PROOF_LENGTH = 32;
  public static final int PING_LENGTH = 8;
  public static final int MAX_PACKET = 65_535;
  public static final int MAX_TEXT = 65_535;

  /** Type byte + key: what precedes the packet in SendPacket and RecvPacket. */
  public static final int PACKET_HEADER = 1 + KEY_LENGTH;

  /** Type byte + source + destination: what precedes the packet in ForwardPacket. */
  public static final int FORWARD_HEADER = 1 + 2 * KEY_LENGTH;

  public static final int MAX_FRAME = FORWARD_HEADER + MAX_PACKET;

  /** The raw transport's {@code Upgrade} token and its frame length prefix. */
  public static final String RAW_UPGRADE = "trellis-relay";

  public static final int RAW_LENGTH_FIELD = 4;

  /** What goes into the proof after the challenge and before the node key. */
  public static final byte[] AUTH_LABEL =
      "trellis relay auth v1".getBytes(StandardCharsets.US_ASCII);

  public static final byte SERVER_HELLO = 0x01;
  public static final byte CLIENT_AUTH = 0x02;
  public static final byte SERVER_READY = 0x03;
  public static final byte SEND_PACKET = 0x04;
  public static final byte RECV_PACKET = 0x05;
  public static final byte KEEP_ALIVE = 0x06;
  public static final byte PING = 0x07;
  public static final byte PONG = 0x08;
  public static final byte PEER_GONE = 0x09;
  public static final byte HEALTH = 0x0a;
  public static final byte RESTARTING = 0x0b;
  public static final byte ERROR = 0x0c;
  public static final byte SEND_SAME = 0x0d;
  public static final byte RECV_SAME = 0x0e;
  public static final byte FORWARD_PACKET = 0x0f;

  /** PeerGone reasons. */
  public static final byte GONE_DISCONNECTED = 0x00;

  public static final byte GONE_NOT_CONNECTED = 0x01;

  private RelayFrame() {}

  /** A frame that does not follow the format: wrong length, unknown type, bad text. */
  public static final class FormatException extends Exception {
    public FormatException(String message) {
      super(message);
    }
  }

  public sealed interface Frame {}

  public record ServerHello(byte[] relayKey, byte[] challenge) implements Frame {}

  public record ClientAuth(byte[] nodeKey, byte[] proof) implements Frame {}

  public record ServerReady() implements Frame {}

  /** {@code packet[offset, offset+length)}. Parsing shares the frame's array, it does not copy. */
  public record SendPacket(byte[] destination, byte[] packet, int offset, int length)
      implements Frame {}

  public record RecvPacket(byte[] source, byte[] packet, int offset, int length) implements Frame {}

  public record SendSame(byte[] packet, int offset, int length) implements Frame {}

  public record RecvSame(byte[] packet, int offset, int length) implements Frame {}

  public record ForwardPacket(
      byte[] source, byte[] destination, byte[] packet, int offset, int length) implements Frame {}

  public record KeepAlive() implements Frame {}

  public record Ping(byte[] data) implements Frame {}

  public record Pong(byte[] data) implements Frame {}

  public record PeerGone(byte[] key, byte reason) implements Frame {}

  public record Health(String problem) implements Frame {}

  /** Unsigned 32-bit millisecond values, held in longs. */
  public record Restarting(long reconnectInMillis, long tryForMillis) implements Frame {}

  public record Error(String reason) implements Frame {}

  public static String typeName(int type) {
    return switch (type) {
      case SERVER_HELLO -> "ServerHello";
      case CLIENT_AUTH -> "ClientAuth";
      case SERVER_READY -> "ServerReady";
      case SEND_PACKET -> "SendPacket";
      case SEND_SAME -> "SendSame";
      case RECV_SAME -> "RecvSame";
      case FORWARD_PACKET -> "ForwardPacket";
      case RECV_PACKET -> "RecvPacket";
      case KEEP_ALIVE -> "KeepAlive";
      case PING -> "Ping";
      case PONG -> "Pong";
      case PEER_GONE -> "PeerGone";
      case HEALTH -> "Health";
      case RESTARTING -> "Restarting";
      case ERROR -> "Error";
      default -> String.format("unknown type 0x%02x", type & 0xff);
    };
  }

  /**
   * Checks that a frame of {@code type} may be {@code length} bytes long in total (type byte
   * included), without looking at the body: what the relay's forwarding path needs.
   */
  public static void validate(int type, int length) throws FormatException {
    if (length < 1) {
      throw new FormatException("empty relay frame");
    }
    if (length > MAX_FRAME) {
      throw new FormatException("relay frame of " + length + " bytes is larger than " + MAX_FRAME);
    }
    int body = length - 1;
    boolean ok =
        switch (type) {
          case SERVER_HELLO -> body == KEY_LENGTH + NONCE_LENGTH;
          case CLIENT_AUTH -> body == KEY_LENGTH + PROOF_LENGTH;
          case SERVER_READY, KEEP_ALIVE -> body == 0;
          case SEND_PACKET, RECV_PACKET -> body > KEY_LENGTH && body <= KEY_LENGTH + MAX_PACKET;
          case SEND_SAME, RECV_SAME -> body >= 1 && body <= MAX_PACKET;
          case FORWARD_PACKET -> body > 2 * KEY_LENGTH && body <= 2 * KEY_LENGTH + MAX_PACKET;
          case PING, PONG -> body == PING_LENGTH;
          case PEER_GONE -> body == KEY_LENGTH + 1;
          case HEALTH, ERROR -> body <= MAX_TEXT;
          case RESTARTING -> body == 8;
          default -> throw new FormatException("unknown relay frame " + typeName(type));
        };
    if (!ok) {
      throw new FormatException(typeName(type) + " frame with a " + body + "-byte body");
    }
  }

  public static Frame parse(byte[] frame) throws FormatException {
    return parse(frame, 0, frame.length);
  }

  /** Parses {@code data[offset, offset+length)}; packets in the result share {@code data}. */
  public static Frame parse(byte[] data, int offset, int length) throws FormatException {
    if (offset < 0 || length < 0 || offset + length > data.length) {
      throw new IndexOutOfBoundsException("frame range outside the array");
    }
    if (length == 0) {
      throw new FormatException("empty relay frame");
    }
    int type = data[offset];
    validate(type, length);
    int b = offset + 1;
    return switch (type) {
      case SERVER_HELLO ->
          new ServerHello(copy(data, b, KEY_LENGTH), copy(data, b + KEY_LENGTH, NONCE_LENGTH));
      case CLIENT_AUTH ->
          new ClientAuth(copy(data, b, KEY_LENGTH), copy(data, b + KEY_LENGTH, PROOF_LENGTH));
      case SERVER_READY -> new ServerReady();
      case SEND_PACKET ->
          new SendPacket(copy(data, b, KEY_LENGTH), data, b + KEY_LENGTH, length - PACKET_HEADER);
      case RECV_PACKET ->
          new RecvPacket(copy(data, b, KEY_LENGTH), data, b + KEY_LENGTH, length - PACKET_HEADER);
      case SEND_SAME -> new SendSame(data, b, length - 1);
      case RECV_SAME -> new RecvSame(data, b, length - 1);
      case FORWARD_PACKET ->
          new ForwardPacket(
              copy(data, b, KEY_LENGTH),
              copy(data, b + KEY_LENGTH, KEY_LENGTH),
              data,
              offset + FORWARD_HEADER,
              length - FORWARD_HEADER);
      case KEEP_ALIVE -> new KeepAlive();
      case PING -> new Ping(copy(data, b, PING_LENGTH));
      case PONG -> new Pong(copy(data, b, PING_LENGTH));
      case PEER_GONE -> {
        byte reason = data[b + KEY_LENGTH];
        if (reason != GONE_DISCONNECTED && reason != GONE_NOT_CONNECTED) {
          throw new FormatException("PeerGone with unknown reason " + reason);
        }
        yield new PeerGone(copy(data, b, KEY_LENGTH), reason);
      }
      case HEALTH -> new Health(utf8(data, b, length - 1));
      case RESTARTING -> new Restarting(u32(data, b), u32(data, b + 4));
      case ERROR -> new Error(utf8(data, b, length - 1));
      default -> throw new FormatException("unknown relay frame " + typeName(type));
    };
  }

  /**
   * The frame's bytes; throws IllegalArgumentException for a frame that could not be parsed back.
   */
  public static byte[] encode(Frame frame) {
    byte[] out =
        switch (frame) {
          case ServerHello f ->
              concat(
                  SERVER_HELLO, key(f.relayKey()), exact(f.challenge(), NONCE_LENGTH, "challenge"));
          case ClientAuth f ->
              concat(CLIENT_AUTH, key(f.nodeKey()), exact(f.proof(), PROOF_LENGTH, "proof"));
          case ServerReady f -> new byte[] {SERVER_READY};
          case SendPacket f ->
              packetFrame(SEND_PACKET, f.destination(), f.packet(), f.offset(), f.length());
          case RecvPacket f ->
              packetFrame(RECV_PACKET, f.source(), f.packet(), f.offset(), f.length());
          case SendSame f -> sameFrame(SEND_SAME, f.packet(), f.offset(), f.length());
          case RecvSame f -> sameFrame(RECV_SAME, f.packet(), f.offset(), f.length());
          case ForwardPacket f ->
              forwardFrame(f.source(), f.destination(), f.packet(), f.offset(), f.length());
          case KeepAlive f -> new byte[] {KEEP_ALIVE};
          case Ping f -> concat(PING, exact(f.data(), PING_LENGTH, "ping data"));
          case Pong f -> concat(PONG, exact(f.data(), PING_LENGTH, "pong data"));
          case PeerGone f -> {
            if (f.reason() != GONE_DISCONNECTED && f.reason() != GONE_NOT_CONNECTED) {
              throw new IllegalArgumentException("unknown PeerGone reason " + f.reason());
            }
            yield concat(PEER_GONE, key(f.key()), new byte[] {f.reason()});
          }
          case Health f -> concat(HEALTH, text(f.problem()));
          case Restarting f -> {
            byte[] body = new byte[8];
            putU32(body, 0, f.reconnectInMillis());
            putU32(body, 4, f.tryForMillis());
            yield concat(RESTARTING, body);
          }
          case Error f -> concat(ERROR, text(f.reason()));
        };
    return out;
  }

  /** A SendSame or RecvSame frame around {@code packet[offset, offset+length)}. */
  public static byte[] sameFrame(byte type, byte[] packet, int offset, int length) {
    if (length < 1 || length > MAX_PACKET) {
      throw new IllegalArgumentException("packet of " + length + " bytes (1.." + MAX_PACKET + ")");
    }
    byte[] frame = new byte[1 + length];
    frame[0] = type;
    System.arraycopy(packet, offset, frame, 1, length);
    return frame;
  }

  /**
   * A ForwardPacket frame: {@code FORWARD_PACKET | source | destination | packet[offset,
   * offset+length)}.
   */
  public static byte[] forwardFrame(
      byte[] source, byte[] destination, byte[] packet, int offset, int length) {
    if (length < 1 || length > MAX_PACKET) {
      throw new IllegalArgumentException(
          "packet of " + length + " bytes; must be 1.." + MAX_PACKET);
    }
    byte[] out = new byte[FORWARD_HEADER + length];
    out[0] = FORWARD_PACKET;
    System.arraycopy(key(source), 0, out, 1, KEY_LENGTH);
    System.arraycopy(key(destination), 0, out, 1 + KEY_LENGTH, KEY_LENGTH);
    System.arraycopy(packet, offset, out, FORWARD_HEADER, length);
    return out;
  }

  /** A SendPacket or RecvPacket frame: {@code type | key | packet[offset, offset+length)}. */
  public static byte[] packetFrame(byte type, byte[] key, byte[] packet, int offset, int length) {
    if (type != SEND_PACKET && type != RECV_PACKET) {
      throw new IllegalArgumentException("not a packet frame type: " + typeName(type));
    }
    if (length < 1 || length > MAX_PACKET) {
      throw new IllegalArgumentException(
          "packet of " + length + " bytes; must be 1.." + MAX_PACKET);
    }
    byte[] out = new byte[PACKET_HEADER + length];
    out[0] = type;
    System.arraycopy(key(key), 0, out, 1, KEY_LENGTH);
    System.arraycopy(packet, offset, out, PACKET_HEADER, length);
    return out;
  }

  // ---- authentication ------------------------------------------------------------------------

  /** The node's proof from its shared secret X25519(nodePrivate, relayPublic). */
  public static byte[] proof(byte[] sharedSecret, byte[] challenge, byte[] nodePublicKey) {
    return NoiseHash.hmac(
        sharedSecret, AUTH_LABEL, exact(challenge, NONCE_LENGTH, "challenge"), key(nodePublicKey));
  }

  /** ClientAuth answering {@code hello}, computed with the node's private key. */
  public static ClientAuth authenticate(byte[] nodePrivateKey, ServerHello hello) {
    byte[] nodePublic = Curve25519.publicKey(nodePrivateKey);
    byte[] shared = Curve25519.sharedSecret(nodePrivateKey, hello.relayKey());
    if (shared == null) {
      throw new IllegalArgumentException("relay key is a low-order point");
    }
    try {
      return new ClientAuth(nodePublic, proof(shared, hello.challenge(), nodePublic));
    } finally {
      Arrays.fill(shared, (byte) 0);
    }
  }

  /** The relay's check of a ClientAuth against its private key and the challenge it sent. */
  public static boolean verify(byte[] relayPrivateKey, byte[] challenge, ClientAuth auth) {
    byte[] shared = Curve25519.sharedSecret(relayPrivateKey, auth.nodeKey());
    if (shared == null) {
      return false;
    }
    try {
      return MessageDigest.isEqual(proof(shared, challenge, auth.nodeKey()), auth.proof());
    } finally {
      Arrays.fill(shared, (byte) 0);
    }
  }

  // ---- helpers -------------------------------------------------------------------------------

  private static byte[] copy(byte[] data, int offset, int length) {
    return Arrays.copyOfRange(data, offset, offset + length);
  }

  private static byte[] key(byte[] key) {
    return exact(key, KEY_LENGTH, "key");
  }

  private static byte[] exact(byte[] value, int length, String what) {
    if (value == null || value.length != length) {
      throw new IllegalArgumentException(what + " must be " + length + " bytes");
    }
    return value;
  }

  private static byte[] text(String s) {
    byte[] bytes = (s == null ? "" : s).getBytes(StandardCharsets.UTF_8);
    if (bytes.length > MAX_TEXT) {
      throw new IllegalArgumentException(
          "text of " + bytes.length + " bytes is longer than " + MAX_TEXT);
    }
    return bytes;
  }

  private static String utf8(byte[] data, int offset, int length) throws FormatException {
    try {
      return StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(data, offset, length))
          .toString();
    } catch (CharacterCodingException e) {
      throw new FormatException("text is not valid UTF-8");
    }
  }

  private static long u32(byte[] data, int offset) {
    return ((data[offset] & 0xffL) << 24)
        | ((data[offset + 1] & 0xffL) << 16)
        | ((data[offset + 2] & 0xffL) << 8)
        | (data[offset + 3] & 0xffL);
  }

  private static void putU32(byte[] out, int offset, long value) {
    if (value < 0 || value > 0xffff_ffffL) {
      throw new IllegalArgumentException("not an unsigned 32-bit value: " + value);
    }
    out[offset] = (byte) (value >>> 24);
    out[offset + 1] = (byte) (value >>> 16);
    out[offset + 2] = (byte) (value >>> 8);
    out[offset + 3] = (byte) value;
  }

  private static byte[] concat(byte type, byte[]... parts) {
    int n = 1;
    for (byte[] p : parts) {
      n += p.length;
    }
    byte[] out = new byte[n];
    out[0] = type;
    int at = 1;
    for (byte[] p : parts) {
      System.arraycopy(p, 0, out, at, p.length);
      at += p.length;
    }
    return out;
  }
}
