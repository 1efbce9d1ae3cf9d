package dev.trellis.proto.wireguard;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * One peer's side of the Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake, as the WireGuard
 * whitepaper (section 5.4) specifies it. The state moves ZEROED → INITIATION_CREATED →
 * RESPONSE_CONSUMED on the initiator and ZEROED → INITIATION_CONSUMED → RESPONSE_CREATED on the
 * responder; {@link #deriveKeys} turns the last two into a {@link Keypair} and zeroes the state.
 * All methods are synchronized: the packet path and the timer path may both start handshakes.
 */
public final class Handshake {
  public static final byte[] CONSTRUCTION =
      "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s".getBytes(StandardCharsets.US_ASCII);
  public static final byte[] IDENTIFIER =
      "WireGuard v1 zx2c4 Jason@zx2c4.com".getBytes(StandardCharsets.US_ASCII);

  /** WireGuard's own protocol: the default. */
  public static final Protocol WIREGUARD = new Protocol(IDENTIFIER);

  static final byte[] INITIAL_CHAIN_KEY = WIREGUARD.initialChainKey();
  static final byte[] INITIAL_HASH = WIREGUARD.initialHash();

  /** A peer may not make us do DH work for initiations more often than this (whitepaper 5.1). */
  public static final long INITIATION_MIN_INTERVAL_NANOS = 20_000_000L;

  private static final byte[] EMPTY = new byte[0];
  private static final byte[] NO_PRESHARED_KEY = new byte[32];

  /**
   * The handshake's identity: the same Noise construction under a different identifier (the Noise
   * prologue) yields unrelated keys, so a handshake of one protocol never completes as another's.
   * Trellis' control channel uses its own identifier.
   */
  public record Protocol(byte[] identifier) {
    public byte[] initialChainKey() {
      return NoiseHash.hash(CONSTRUCTION);
    }

    public byte[] initialHash() {
      return NoiseHash.hash(initialChainKey(), identifier);
    }
  }

  public enum State {
    ZEROED,
    INITIATION_CREATED,
    INITIATION_CONSUMED,
    RESPONSE_CREATED,
    RESPONSE_CONSUMED
  }

  /** What a responder learns from an initiation before knowing which peer sent it. */
  public record InitiationOpening(
      byte[] remoteStatic, byte[] hash, byte[] chainKey, Message.HandshakeInitiation message) {}

  private final Protocol protocol;
  private final byte[] localPrivate;
  private final byte[] localPublic;
  private final byte[] remoteStatic;

  /**
   * DH(local static, remote static), fixed for the pair; null when the peer's key is of low order.
   */
  private final byte[] staticStatic;

  private byte[] presharedKey = NO_PRESHARED_KEY;

  private State state = State.ZEROED;
  private byte[] hash;
  private byte[] chainKey;
  private byte[] localEphemeralPrivate;
  private byte[] remoteEphemeral;
  private int localIndex;
  private int remoteIndex;
  private byte[] lastTimestamp;
  private long lastInitiationConsumedNanos;
  private boolean anyInitiationConsumed;

  public Handshake(byte[] localPrivate, byte[] remoteStatic) {
    this(WIREGUARD, localPrivate, remoteStatic);
  }

  public Handshake(Protocol protocol, byte[] localPrivate, byte[] remoteStatic) {
    this.protocol = protocol;
    this.localPrivate = localPrivate.clone();
    this.localPublic = Curve25519.publicKey(localPrivate);
    this.remoteStatic = remoteStatic.clone();
    this.staticStatic = Curve25519.sharedSecret(localPrivate, remoteStatic);
  }

  public synchronized void setPresharedKey(byte[] key) {
    presharedKey = key == null ? NO_PRESHARED_KEY : key.clone();
  }

  public synchronized byte[] presharedKey() {
    return presharedKey.clone();
  }

  public synchronized State state() {
    return state;
  }

  public synchronized int localIndex() {
    return localIndex;
  }

  public byte[] remoteStatic() {
    return remoteStatic.clone();
  }

  /** Builds an initiation to this peer with zeroed MACs (the cookie generator fills them in). */
  public synchronized Message.HandshakeInitiation createInitiation(
      int newLocalIndex, byte[] timestamp) {
    if (staticStatic == null) {
      return null;
    }
    byte[] h = NoiseHash.hash(protocol.initialHash(), remoteStatic);
    byte[] ck = protocol.initialChainKey();
    byte[] ephemeralPrivate = Curve25519.generatePrivateKey();
    byte[] ephemeral = Curve25519.publicKey(ephemeralPrivate);
    ck = NoiseHash.kdf(1, ck, ephemeral)[0];
    h = NoiseHash.hash(h, ephemeral);
    byte[] es = Curve25519.sharedSecret(ephemeralPrivate, remoteStatic);
    if (es == null) {
      return null;
    }
    byte[][] ckKey = NoiseHash.kdf(2, ck, es);
    ck = ckKey[0];
    byte[] encryptedStatic = ChaChaPoly.forThisThread().seal(ckKey[1], 0, localPublic, h);
    h = NoiseHash.hash(h, encryptedStatic);
    ckKey = NoiseHash.kdf(2, ck, staticStatic);
    ck = ckKey[0];
    byte[] encryptedTimestamp = ChaChaPoly.forThisThread().seal(ckKey[1], 0, timestamp, h);
    h = NoiseHash.hash(h, encryptedTimestamp);

    hash = h;
    chainKey = ck;
    localEphemeralPrivate = ephemeralPrivate;
    localIndex = newLocalIndex;
    remoteEphemeral = null;
    state = State.INITIATION_CREATED;
    return new Message.HandshakeInitiation(
        newLocalIndex, ephemeral, encryptedStatic, encryptedTimestamp, new byte[16], new byte[16]);
  }

  /**
   * First half of consuming an initiation, done with only our own static key: recovers the
   * initiator's static public key so the caller can find the peer. Null when it does not decrypt.
   */
  public static InitiationOpening openInitiation(
      byte[] localPrivate, byte[] localPublic, Message.HandshakeInitiation msg) {
    return openInitiation(WIREGUARD, localPrivate, localPublic, msg);
  }

  public static InitiationOpening openInitiation(
      Protocol protocol, byte[] localPrivate, byte[] localPublic, Message.HandshakeInitiation msg) {
    byte[] h = NoiseHash.hash(protocol.initialHash(), localPublic);
    byte[] ck = NoiseHash.kdf(1, protocol.initialChainKey(), msg.ephemeral())[0];
    h = NoiseHash.hash(h, msg.ephemeral());
    byte[] es = Curve25519.sharedSecret(localPrivate, msg.ephemeral());
    if (es == null) {
      return null;
    }
    byte[][] ckKey = NoiseHash.kdf(2, ck, es);
    byte[] remoteStatic = ChaChaPoly.forThisThread().open(ckKey[1], 0, msg.encryptedStatic(), h);
    if (remoteStatic == null) {
      return null;
    }
    h = NoiseHash.hash(h, msg.encryptedStatic());
    return new InitiationOpening(remoteStatic, h, ckKey[0], msg);
  }

  /**
   * Second half: authenticates the timestamp with the static-static secret and rejects replays (a
   * timestamp not after the last accepted one) and floods (initiations closer than 20 ms).
   */
  public synchronized boolean consumeInitiation(InitiationOpening opening, long nowNanos) {
    if (staticStatic == null || !Arrays.equals(opening.remoteStatic(), remoteStatic)) {
      return false;
    }
    byte[][] ckKey = NoiseHash.kdf(2, opening.chainKey(), staticStatic);
    Message.HandshakeInitiation msg = opening.message();
    byte[] timestamp =
        ChaChaPoly.forThisThread().open(ckKey[1], 0, msg.encryptedTimestamp(), opening.hash());
    if (timestamp == null) {
      return false;
    }
    boolean replay = lastTimestamp != null && !Tai64n.isAfter(timestamp, lastTimestamp);
    boolean flood =
        anyInitiationConsumed
            && nowNanos - lastInitiationConsumedNanos < INITIATION_MIN_INTERVAL_NANOS;
    if (replay || flood) {
      return false;
    }
    hash = NoiseHash.hash(opening.hash(), msg.encryptedTimestamp());
    chainKey = ckKey[0];
    remoteIndex = msg.sender();
    remoteEphemeral = msg.ephemeral();
    lastTimestamp = timestamp;
    lastInitiationConsumedNanos = nowNanos;
    anyInitiationConsumed = true;
    state = State.INITIATION_CONSUMED;
    return true;
  }

  /** Builds the response to a consumed initiation, with zeroed MACs. */
  public synchronized Message.HandshakeResponse createResponse(int newLocalIndex) {
    if (state != State.INITIATION_CONSUMED) {
      return null;
    }
    byte[] ephemeralPrivate = Curve25519.generatePrivateKey();
    byte[] ephemeral = Curve25519.publicKey(ephemeralPrivate);
    ResponseKeys keys =
        responseKeys(
            ephemeral,
            Curve25519.sharedSecret(ephemeralPrivate, remoteEphemeral),
            Curve25519.sharedSecret(ephemeralPrivate, remoteStatic));
    if (keys == null) {
      return null;
    }
    byte[] encryptedNothing = ChaChaPoly.forThisThread().seal(keys.key(), 0, EMPTY, keys.hash());

    hash = NoiseHash.hash(keys.hash(), encryptedNothing);
    chainKey = keys.chainKey();
    localEphemeralPrivate = ephemeralPrivate;
    localIndex = newLocalIndex;
    state = State.RESPONSE_CREATED;
    return new Message.HandshakeResponse(
        newLocalIndex, remoteIndex, ephemeral, encryptedNothing, new byte[16], new byte[16]);
  }

  /**
   * Consumes the response to our initiation; false (state unchanged) when it does not authenticate.
   */
  public synchronized boolean consumeResponse(Message.HandshakeResponse msg) {
    if (state != State.INITIATION_CREATED || msg.receiver() != localIndex) {
      return false;
    }
    ResponseKeys keys =
        responseKeys(
            msg.ephemeral(),
            Curve25519.sharedSecret(localEphemeralPrivate, msg.ephemeral()),
            Curve25519.sharedSecret(localPrivate, msg.ephemeral()));
    if (keys == null
        || ChaChaPoly.forThisThread().open(keys.key(), 0, msg.encryptedNothing(), keys.hash())
            == null) {
      return false;
    }
    hash = NoiseHash.hash(keys.hash(), msg.encryptedNothing());
    chainKey = keys.chainKey();
    remoteIndex = msg.sender();
    state = State.RESPONSE_CONSUMED;
    return true;
  }

  private record ResponseKeys(byte[] chainKey, byte[] hash, byte[] key) {}

  /**
   * The response's key schedule, the same on both sides: mix in the responder's ephemeral, the
   * ephemeral-ephemeral and static-ephemeral secrets, then the preshared key. Null when either
   * secret is all zeros (a low-order point).
   */
  private ResponseKeys responseKeys(byte[] responderEphemeral, byte[] ee, byte[] se) {
    if (ee == null || se == null) {
      return null;
    }
    byte[] ck = NoiseHash.kdf(1, chainKey, responderEphemeral)[0];
    byte[] h = NoiseHash.hash(hash, responderEphemeral);
    ck = NoiseHash.kdf(1, ck, ee)[0];
    ck = NoiseHash.kdf(1, ck, se)[0];
    byte[][] ckTauKey = NoiseHash.kdf(3, ck, presharedKey);
    return new ResponseKeys(ckTauKey[0], NoiseHash.hash(h, ckTauKey[1]), ckTauKey[2]);
  }

  /**
   * Derives the transport keys once a handshake has completed on our side (response created or
   * consumed) and wipes the handshake state; null in any other state.
   */
  public synchronized Keypair deriveKeys(long nowNanos) {
    boolean initiator;
    if (state == State.RESPONSE_CONSUMED) {
      initiator = true;
    } else if (state == State.RESPONSE_CREATED) {
      initiator = false;
    } else {
      return null;
    }
    byte[][] keys = NoiseHash.kdf(2, chainKey, EMPTY);
    byte[] send = initiator ? keys[0] : keys[1];
    byte[] receive = initiator ? keys[1] : keys[0];
    Keypair keypair = new Keypair(send, receive, initiator, localIndex, remoteIndex, nowNanos);
    Arrays.fill(keys[0], (byte) 0);
    Arrays.fill(keys[1], (byte) 0);
    clear();
    return keypair;
  }

  /** Forgets any handshake in progress (keeps the replay-protection timestamp). */
  public synchronized void clear() {
    if (hash != null) Arrays.fill(hash, (byte) 0);
    if (chainKey != null) Arrays.fill(chainKey, (byte) 0);
    if (localEphemeralPrivate != null) Arrays.fill(localEphemeralPrivate, (byte) 0);
    hash = null;
    chainKey = null;
    localEphemeralPrivate = null;
    remoteEphemeral = null;
    localIndex = 0;
    remoteIndex = 0;
    state = State.ZEROED;
  }

  public byte[] localPublic() {
    return localPublic.clone();
  }
}
