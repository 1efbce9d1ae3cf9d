package dev.trellis.dataplane.wireguard;

import dev.trellis.proto.wireguard.Cookie;
import dev.trellis.proto.wireguard.Handshake;
import dev.trellis.proto.wireguard.Keypair;
import dev.trellis.proto.wireguard.Message;
import dev.trellis.proto.wireguard.Tai64n;
import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.HexFormat;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One remote WireGuard peer: its configuration, its handshake, up to three sessions (previous,
 * current, and next — a responder's session not yet confirmed by the initiator's first data
 * packet), packets waiting for a session, counters and timers.
 */
final class Peer {
  /** Packets held while a handshake is under way; older ones are dropped beyond this. */
  static final int MAX_STAGED_PACKETS = 128;

  private final Device device;
  private final byte[] publicKey;
  private final String publicKeyHex;
  final Cookie.Generator cookieGenerator;
  final PeerTimers timers;
  private volatile Handshake handshake;
  private volatile InetSocketAddress endpoint;
  private volatile int persistentKeepaliveSeconds;

  private final Object keypairLock = new Object();
  private Keypair previous;
  private volatile Keypair current;
  private volatile Keypair next;

  private final ArrayDeque<byte[]> staged = new ArrayDeque<>();
  private final AtomicBoolean handshakeRequested = new AtomicBoolean();
  private volatile long lastSentHandshakeNanos;
  private volatile boolean anyHandshakeSent;
  private volatile long lastHandshakeEpochNanos;
  final AtomicLong rxBytes = new AtomicLong();
  final AtomicLong txBytes = new AtomicLong();

  Peer(Device device, byte[] publicKey, byte[] localPrivateKey, Timing timing) {
    this.device = device;
    this.publicKey = publicKey.clone();
    this.publicKeyHex = HexFormat.of().formatHex(publicKey);
    this.cookieGenerator = new Cookie.Generator(publicKey);
    this.timers = new PeerTimers(this, timing);
    this.handshake = localPrivateKey == null ? null : new Handshake(localPrivateKey, publicKey);
  }

  byte[] publicKey() {
    return publicKey.clone();
  }

  /** The key itself, for the per-packet transport; never modified. */
  byte[] publicKeyRaw() {
    return publicKey;
  }

  String publicKeyHex() {
    return publicKeyHex;
  }

  Handshake handshake() {
    return handshake;
  }

  InetSocketAddress endpoint() {
    return endpoint;
  }

  int persistentKeepaliveSeconds() {
    return persistentKeepaliveSeconds;
  }

  long lastHandshakeEpochNanos() {
    return lastHandshakeEpochNanos;
  }

  Keypair currentKeypair() {
    return current;
  }

  void setEndpoint(InetSocketAddress address) {
    endpoint = address;
  }

  /** Roaming: the endpoint follows the source of the last authenticated packet. */
  void roamTo(InetSocketAddress source) {
    if (!source.equals(endpoint)) {
      endpoint = source;
    }
  }

  void setPersistentKeepalive(int seconds) {
    persistentKeepaliveSeconds = seconds;
  }

  void setPresharedKey(byte[] key) {
    Handshake h = handshake;
    if (h != null) {
      h.setPresharedKey(key);
    }
  }

  byte[] presharedKey() {
    Handshake h = handshake;
    return h == null ? new byte[32] : h.presharedKey();
  }

  /** Our private key changed: sessions made with the old one are useless. */
  void rekeyLocalIdentity(byte[] localPrivateKey) {
    byte[] psk = presharedKey();
    Handshake fresh = localPrivateKey == null ? null : new Handshake(localPrivateKey, publicKey);
    if (fresh != null) {
      fresh.setPresharedKey(psk);
    }
    zeroKeyMaterial();
    handshake = fresh;
  }

  // ---- sessions ----------------------------------------------------------------------------

  /** A session we initiated is complete: it replaces the current one at once. */
  void installInitiatorKeypair(Keypair keypair) {
    synchronized (keypairLock) {
      Keypair oldPrevious = previous;
      if (next != null) {
        previous = next;
        next = null;
        forget(current);
      } else {
        previous = current;
      }
      forget(oldPrevious);
      current = keypair;
    }
    device.indexTable().swapInKeypair(keypair, this);
    lastHandshakeEpochNanos = epochNanos();
  }

  /** A session we responded to waits as "next" until the initiator proves it has it. */
  void installResponderKeypair(Keypair keypair) {
    synchronized (keypairLock) {
      forget(next);
      forget(previous);
      previous = null;
      next = keypair;
    }
    device.indexTable().swapInKeypair(keypair, this);
    // Not a completed handshake yet: the time is recorded when the initiator confirms it
    // (confirmIfNext), as wireguard-go and the kernel module do.
  }

  /** Whether a packet arriving on {@code keypair} may be accepted from this peer. */
  boolean ownsKeypair(Keypair keypair) {
    return keypair == current || keypair == next || keypair == previous;
  }

  /**
   * The first packet on a "next" session confirms it: it becomes current. Returns true when this
   * call made that rotation (the caller then flushes staged packets).
   */
  boolean confirmIfNext(Keypair keypair) {
    if (next != keypair) {
      return false;
    }
    synchronized (keypairLock) {
      if (next != keypair) {
        return false;
      }
      forget(previous);
      previous = current;
      current = keypair;
      next = null;
    }
    lastHandshakeEpochNanos = epochNanos();
    return true;
  }

  void zeroKeyMaterial() {
    synchronized (keypairLock) {
      forget(previous);
      forget(current);
      forget(next);
      previous = null;
      current = null;
      next = null;
    }
    Handshake h = handshake;
    if (h != null) {
      int index = h.localIndex();
      h.clear();
      if (index != 0) {
        device.indexTable().remove(index);
      }
    }
    synchronized (staged) {
      staged.clear();
    }
  }

  private void forget(Keypair keypair) {
    if (keypair != null) {
      device.indexTable().remove(keypair.localIndex());
    }
  }

  // ---- sending -----------------------------------------------------------------------------

  /** Queues a packet until a session exists; the oldest is dropped when full. */
  void stage(byte[] packet) {
    synchronized (staged) {
      if (staged.size() >= MAX_STAGED_PACKETS) {
        staged.pollFirst();
        device.counters().stagedDropped.increment();
      }
      staged.addLast(packet);
    }
  }

  /** Seals and sends queued packets with the current session, or asks for a handshake. */
  void sendStaged(PacketSealer sealer) {
    while (true) {
      byte[] packet;
      synchronized (staged) {
        packet = staged.peekFirst();
      }
      if (packet == null) {
        return;
      }
      if (!sealer.sealAndSend(this, packet, 0, packet.length)) {
        requestHandshake();
        return;
      }
      synchronized (staged) {
        staged.pollFirst();
      }
    }
  }

  /** A keepalive is an empty transport message; with packets queued, those serve instead. */
  void sendKeepalive() {
    synchronized (staged) {
      if (staged.isEmpty()) {
        staged.addLast(new byte[0]);
      }
    }
    sendStaged(device.controlSealer());
  }

  void giveUpHandshake() {
    synchronized (staged) {
      staged.clear();
    }
  }

  /** From any thread: have the control thread send an initiation unless one went out recently. */
  void requestHandshake() {
    if (anyHandshakeSent
        && System.nanoTime() - lastSentHandshakeNanos < device.timing().rekeyTimeout()) {
      return;
    }
    if (handshakeRequested.compareAndSet(false, true)) {
      device.runOnControlThread(
          () -> {
            handshakeRequested.set(false);
            sendHandshakeInitiation(false);
          });
    }
  }

  /** Control thread only. */
  void sendHandshakeInitiation(boolean retry) {
    if (!retry) {
      timers.handshakeAttempts = 0;
    }
    long now = System.nanoTime();
    if (anyHandshakeSent && now - lastSentHandshakeNanos < device.timing().rekeyTimeout()) {
      return;
    }
    Handshake h = handshake;
    if (h == null || !device.reachable(this)) {
      return;
    }
    lastSentHandshakeNanos = now;
    anyHandshakeSent = true;
    int oldIndex = h.localIndex();
    if (oldIndex != 0 && h.state() == Handshake.State.INITIATION_CREATED) {
      device.indexTable().remove(oldIndex);
    }
    int index = device.indexTable().registerHandshake(this);
    Message.HandshakeInitiation initiation = h.createInitiation(index, Tai64n.now());
    if (initiation == null) {
      device.indexTable().remove(index);
      return;
    }
    byte[] wire = initiation.encode();
    cookieGenerator.addMacs(wire, now);
    timers.anyAuthenticatedPacketTraversal(now);
    timers.anyAuthenticatedPacketSent();
    txBytes.addAndGet(wire.length);
    device.sendToPeer(this, wire, wire.length);
    timers.handshakeInitiated(now);
  }

  /** After sealing a data packet: an initiator renews its session on age or message count. */
  void keepKeyFreshSending(Keypair keypair, long counter, long now) {
    Timing t = device.timing();
    if (Long.compareUnsigned(counter, t.rekeyAfterMessages()) > 0
        || (keypair.initiator() && now - keypair.createdNanos() > t.rekeyAfterTime())) {
      requestHandshake();
    }
  }

  /** After receiving on our own session nearing its end, renew it once before it is rejected. */
  void keepKeyFreshReceiving(Keypair keypair, long now) {
    if (keypair.initiator()
        && !timers.sentLastMinuteHandshake
        && now - keypair.createdNanos() > device.timing().rekeyOnReceiveAge()) {
      timers.sentLastMinuteHandshake = true;
      requestHandshake();
    }
  }

  private static long epochNanos() {
    Instant now = Instant.now();
    return now.getEpochSecond() * 1_000_000_000L + now.getNano();
  }
}
