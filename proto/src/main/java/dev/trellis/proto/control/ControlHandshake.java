package dev.trellis.proto.control;

import dev.trellis.proto.wireguard.Cookie;
import dev.trellis.proto.wireguard.Curve25519;
import dev.trellis.proto.wireguard.Handshake;
import dev.trellis.proto.wireguard.Keypair;
import dev.trellis.proto.wireguard.Message;
import dev.trellis.proto.wireguard.Tai64n;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Both ends of the control channel's Noise IK handshake, built on the WireGuard handshake code with
 * Trellis' own protocol identifier. The node authenticates with its machine key, the server with
 * its static key; nobody else can read or forge the channel, with or without TLS underneath.
 */
public final class ControlHandshake {
  public static final Handshake.Protocol PROTOCOL =
      new Handshake.Protocol("Trellis control v1 dev.trellis".getBytes(StandardCharsets.US_ASCII));
  private static final int SESSION_INDEX = 1;

  private ControlHandshake() {}

  /** The node's side: one use. */
  public static final class Client {
    private final Handshake handshake;
    private final Cookie.Generator macs;

    public Client(byte[] machinePrivateKey, byte[] serverPublicKey) {
      handshake = new Handshake(PROTOCOL, machinePrivateKey, serverPublicKey);
      macs = new Cookie.Generator(serverPublicKey);
    }

    public byte[] initiation() {
      Message.HandshakeInitiation msg = handshake.createInitiation(SESSION_INDEX, Tai64n.now());
      if (msg == null) {
        throw new IllegalArgumentException(
            "the server's public key is not a usable Curve25519 key");
      }
      byte[] wire = msg.encode();
      macs.addMacs(wire, System.nanoTime());
      return wire;
    }

    /** The channel, or an exception when the server's reply does not authenticate. */
    public ControlChannel complete(byte[] response) throws ControlChannel.ChannelException {
      Message.HandshakeResponse msg = Message.HandshakeResponse.parse(response, 0, response.length);
      if (msg == null || !handshake.consumeResponse(msg)) {
        throw new ControlChannel.ChannelException(
            "the server's handshake response does not authenticate: wrong server key?");
      }
      return new ControlChannel(handshake.deriveKeys(System.nanoTime()));
    }
  }

  /** What the server learns from a successful handshake. */
  public record Accepted(byte[] machineKey, byte[] response, ControlChannel channel) {}

  /**
   * The server's side. Remembers the last timestamp per machine key so a recorded initiation cannot
   * be replayed (it could not complete a session anyway without the machine's private key, but it
   * would cost us Diffie-Hellman work).
   */
  public static final class Server {
    private final byte[] privateKey;
    private final byte[] publicKey;
    private final Cookie.Checker macs;
    private final ConcurrentHashMap<String, Handshake> byMachine = new ConcurrentHashMap<>();

    public Server(byte[] privateKey) {
      this.privateKey = privateKey.clone();
      this.publicKey = Curve25519.publicKey(privateKey);
      this.macs = new Cookie.Checker(publicKey);
    }

    public byte[] publicKey() {
      return publicKey.clone();
    }

    /** Null when the initiation is malformed, fails MAC1, does not decrypt, or is a replay. */
    public Accepted accept(byte[] initiation) {
      if (initiation.length != Message.INITIATION_LENGTH
          || !macs.checkMac1(initiation, 0, initiation.length)) {
        return null;
      }
      Message.HandshakeInitiation msg =
          Message.HandshakeInitiation.parse(initiation, 0, initiation.length);
      Handshake.InitiationOpening opening =
          msg == null ? null : Handshake.openInitiation(PROTOCOL, privateKey, publicKey, msg);
      if (opening == null) {
        return null;
      }
      String machine = HexFormat.of().formatHex(opening.remoteStatic());
      Handshake handshake =
          byMachine.computeIfAbsent(
              machine, k -> new Handshake(PROTOCOL, privateKey, opening.remoteStatic()));
      synchronized (handshake) {
        if (!handshake.consumeInitiation(opening, System.nanoTime())) {
          return null;
        }
        Message.HandshakeResponse response = handshake.createResponse(SESSION_INDEX);
        Keypair keypair = response == null ? null : handshake.deriveKeys(System.nanoTime());
        if (keypair == null) {
          return null;
        }
        return new Accepted(opening.remoteStatic(), response.encode(), new ControlChannel(keypair));
      }
    }
  }
}
