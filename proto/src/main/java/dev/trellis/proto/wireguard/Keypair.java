package dev.trellis.proto.wireguard;

import java.util.concurrent.atomic.AtomicLong;
import javax.crypto.spec.SecretKeySpec;

/**
 * The symmetric session one handshake produced: a key per direction, the two indices that name it
 * on the wire, a send counter and the receive replay window. Immutable but for the counters.
 */
public final class Keypair {
  private final SecretKeySpec sendKey;
  private final SecretKeySpec receiveKey;
  private final boolean initiator;
  private final int localIndex;
  private final int remoteIndex;
  private final long createdNanos;
  private final AtomicLong sendCounter = new AtomicLong();
  private final ReplayWindow replayWindow = new ReplayWindow();

  public Keypair(
      byte[] sendKey,
      byte[] receiveKey,
      boolean initiator,
      int localIndex,
      int remoteIndex,
      long createdNanos) {
    this.sendKey = ChaChaPoly.key(sendKey);
    this.receiveKey = ChaChaPoly.key(receiveKey);
    this.initiator = initiator;
    this.localIndex = localIndex;
    this.remoteIndex = remoteIndex;
    this.createdNanos = createdNanos;
  }

  public SecretKeySpec sendKey() {
    return sendKey;
  }

  public SecretKeySpec receiveKey() {
    return receiveKey;
  }

  public boolean initiator() {
    return initiator;
  }

  public int localIndex() {
    return localIndex;
  }

  public int remoteIndex() {
    return remoteIndex;
  }

  public long createdNanos() {
    return createdNanos;
  }

  /** Takes the next send counter (nonce); the caller checks it against the reject limit. */
  public long nextSendCounter() {
    return sendCounter.getAndIncrement();
  }

  public long sendCounter() {
    return sendCounter.get();
  }

  /** Replay check of an authenticated packet's counter; one receiving thread at a time. */
  public synchronized boolean acceptCounter(long counter) {
    return replayWindow.accept(counter);
  }
}
