package dev.trellis.dataplane.wireguard;

import java.util.concurrent.ThreadLocalRandom;

/**
 * The per-peer timer state machine of the whitepaper (section 6), as deadlines that the device's
 * control thread checks on every tick. The packet paths only write deadlines (cheap volatile
 * stores); every expiry runs on the control thread. A deadline of 0 means "not pending".
 *
 * <ul>
 *   <li>retransmitHandshake: no response to our initiation within REKEY_TIMEOUT + jitter: resend,
 *       up to REKEY_ATTEMPT_TIME, then give up and drop queued packets.
 *   <li>sendKeepalive: we received data and sent nothing back for KEEPALIVE_TIMEOUT (passive
 *       keepalive).
 *   <li>newHandshake: we sent data and heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT.
 *   <li>zeroKeyMaterial: no new session for 3 × REJECT_AFTER_TIME: wipe keys.
 *   <li>persistentKeepalive: the configured interval passed without any authenticated packet sent.
 * </ul>
 */
final class PeerTimers {
  private final Peer peer;
  private final Timing timing;
  private volatile long retransmitHandshakeAt;
  private volatile long sendKeepaliveAt;
  private volatile long newHandshakeAt;
  private volatile long zeroKeyMaterialAt;
  private volatile long persistentKeepaliveAt;
  private volatile boolean needAnotherKeepalive;
  volatile int handshakeAttempts;
  volatile boolean sentLastMinuteHandshake;

  PeerTimers(Peer peer, Timing timing) {
    this.peer = peer;
    this.timing = timing;
  }

  private long jitter() {
    return ThreadLocalRandom.current().nextLong(timing.rekeyTimeoutJitterMax());
  }

  private static long deadline(long now, long after) {
    long at = now + after;
    return at == 0 ? 1 : at;
  }

  /** After an authenticated data packet (not a keepalive) is sent. */
  void dataSent(long now) {
    if (newHandshakeAt == 0) {
      newHandshakeAt = deadline(now, timing.keepaliveTimeout() + timing.rekeyTimeout() + jitter());
    }
  }

  /** After an authenticated data packet (not a keepalive) is received. */
  void dataReceived(long now) {
    if (sendKeepaliveAt == 0) {
      sendKeepaliveAt = deadline(now, timing.keepaliveTimeout());
    } else {
      needAnotherKeepalive = true;
    }
  }

  /** After any authenticated packet is sent: keepalive, data or handshake. */
  void anyAuthenticatedPacketSent() {
    sendKeepaliveAt = 0;
  }

  /** After any authenticated packet is received. */
  void anyAuthenticatedPacketReceived() {
    newHandshakeAt = 0;
  }

  /** Before an authenticated packet is sent or after one is received. */
  void anyAuthenticatedPacketTraversal(long now) {
    int interval = peer.persistentKeepaliveSeconds();
    if (interval > 0) {
      persistentKeepaliveAt = deadline(now, interval * 1_000_000_000L);
    }
  }

  void handshakeInitiated(long now) {
    retransmitHandshakeAt = deadline(now, timing.rekeyTimeout() + jitter());
  }

  void handshakeComplete() {
    retransmitHandshakeAt = 0;
    handshakeAttempts = 0;
    sentLastMinuteHandshake = false;
  }

  void sessionDerived(long now) {
    zeroKeyMaterialAt = deadline(now, timing.zeroKeysAfter());
  }

  void stopAll() {
    retransmitHandshakeAt = 0;
    sendKeepaliveAt = 0;
    newHandshakeAt = 0;
    zeroKeyMaterialAt = 0;
    persistentKeepaliveAt = 0;
    handshakeAttempts = 0;
    needAnotherKeepalive = false;
    sentLastMinuteHandshake = false;
  }

  /** Runs every expired timer; called on the device's control thread. */
  void tick(long now) {
    if (expired(retransmitHandshakeAt, now)) {
      retransmitHandshakeAt = 0;
      if (handshakeAttempts > timing.maxHandshakeAttempts()) {
        peer.giveUpHandshake();
        if (zeroKeyMaterialAt == 0) {
          zeroKeyMaterialAt = deadline(now, timing.zeroKeysAfter());
        }
      } else {
        handshakeAttempts++;
        peer.sendHandshakeInitiation(true);
      }
    }
    if (expired(sendKeepaliveAt, now)) {
      sendKeepaliveAt = 0;
      peer.sendKeepalive();
      if (needAnotherKeepalive) {
        needAnotherKeepalive = false;
        sendKeepaliveAt = deadline(now, timing.keepaliveTimeout());
      }
    }
    if (expired(newHandshakeAt, now)) {
      newHandshakeAt = 0;
      peer.sendHandshakeInitiation(false);
    }
    if (expired(zeroKeyMaterialAt, now)) {
      zeroKeyMaterialAt = 0;
      peer.zeroKeyMaterial();
    }
    if (expired(persistentKeepaliveAt, now)) {
      persistentKeepaliveAt = 0;
      if (peer.persistentKeepaliveSeconds() > 0) {
        peer.sendKeepalive();
      }
    }
  }

  private static boolean expired(long at, long now) {
    return at != 0 && now - at >= 0;
  }
}
