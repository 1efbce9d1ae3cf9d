package dev.trellis.proto.control;

import dev.trellis.proto.wireguard.ChaChaPoly;
import dev.trellis.proto.wireguard.Keypair;
import java.util.Arrays;

/**
 * The encrypted control channel between a node and the coordination server, carried in binary
 * WebSocket messages on {@code GET /control}.
 *
 * <pre>
 * node → server   message 1: a WireGuard-format HandshakeInitiation (148 bytes): Noise IK with the
 *                 node's machine key as initiator static, the server's static key (from GET /key)
 *                 as responder static, a TAI64N timestamp, MAC1 keyed by the server's public key;
 *                 protocol identifier {@link ControlHandshake#PROTOCOL}, not WireGuard's.
 * server → node   message 2: a HandshakeResponse (92 bytes), or the WebSocket closes.
 * either way      every later message: counter u64 little-endian | ChaCha20-Poly1305(JSON)
 *                 Each direction's counter starts at 0 and goes up by exactly 1: TCP keeps order,
 *                 so anything else is a replay, a drop or a forgery, and ends the session.
 * </pre>
 *
 * The JSON inside is one {@link ControlMessage}.
 */
public final class ControlChannel {
  public static final int COUNTER_LENGTH = 8;

  /** Largest sealed message a server accepts from a node. */
  public static final int MAX_NODE_MESSAGE = 64 * 1024;

  /** Largest sealed message a node accepts from the server (a full map of a large network). */
  public static final int MAX_SERVER_MESSAGE = 32 * 1024 * 1024;

  private final Keypair keypair;
  private final ChaChaPoly aead = new ChaChaPoly();
  private long nextSend;
  private long nextReceive;

  ControlChannel(Keypair keypair) {
    this.keypair = keypair;
  }

  /** Thrown when a message does not authenticate or arrives out of order. */
  public static final class ChannelException extends Exception {
    public ChannelException(String message) {
      super(message);
    }
  }

  public synchronized byte[] seal(byte[] plaintext) {
    long counter = nextSend++;
    byte[] out = new byte[COUNTER_LENGTH + plaintext.length + ChaChaPoly.TAG_LENGTH];
    for (int i = 0; i < COUNTER_LENGTH; i++) {
      out[i] = (byte) (counter >>> (8 * i));
    }
    aead.seal(
        keypair.sendKey(), counter, plaintext, 0, plaintext.length, null, out, COUNTER_LENGTH);
    return out;
  }

  public synchronized byte[] open(byte[] message) throws ChannelException {
    if (message.length < COUNTER_LENGTH + ChaChaPoly.TAG_LENGTH) {
      throw new ChannelException("control message too short (" + message.length + " bytes)");
    }
    long counter = 0;
    for (int i = COUNTER_LENGTH - 1; i >= 0; i--) {
      counter = (counter << 8) | (message[i] & 0xff);
    }
    if (counter != nextReceive) {
      throw new ChannelException(
          "control message out of order: counter " + counter + ", expected " + nextReceive);
    }
    byte[] plain = new byte[message.length - COUNTER_LENGTH - ChaChaPoly.TAG_LENGTH];
    if (aead.open(
            keypair.receiveKey(),
            counter,
            message,
            COUNTER_LENGTH,
            message.length - COUNTER_LENGTH,
            null,
            plain,
            0)
        < 0) {
      throw new ChannelException("control message does not authenticate");
    }
    nextReceive++;
    return plain;
  }

  @Override
  public String toString() {
    return "ControlChannel[sent=" + nextSend + ", received=" + nextReceive + "]";
  }

  static byte[] copy(byte[] b) {
    return Arrays.copyOf(b, b.length);
  }
}
