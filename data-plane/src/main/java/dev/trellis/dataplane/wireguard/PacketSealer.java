package dev.trellis.dataplane.wireguard;

import dev.trellis.proto.wireguard.ChaChaPoly;
import dev.trellis.proto.wireguard.Keypair;
import dev.trellis.proto.wireguard.Message;
import java.util.Arrays;

/**
 * Turns plaintext IP packets into transport messages and sends them. Owns its cipher and buffers,
 * so each sending thread (the TUN reader, the control thread) has its own instance.
 */
final class PacketSealer {
  private final Device device;
  private final ChaChaPoly aead = new ChaChaPoly();
  private final byte[] padded = new byte[Device.MAX_PACKET + Message.PADDING_MULTIPLE];
  private final byte[] wire =
      new byte[Device.MAX_PACKET + Message.TRANSPORT_MIN_LENGTH + Message.PADDING_MULTIPLE];

  PacketSealer(Device device) {
    this.device = device;
  }

  /** Padding per the whitepaper: up to a multiple of 16, but never past the MTU. */
  static int paddedLength(int length, int mtu) {
    int last = length > mtu && mtu > 0 ? length % mtu : length;
    int padded = (last + Message.PADDING_MULTIPLE - 1) & -Message.PADDING_MULTIPLE;
    if (mtu > 0 && padded > mtu) {
      padded = mtu;
    }
    return length - last + Math.max(padded, last);
  }

  /**
   * Seals {@code packet[off, off+len)} with the peer's current session and sends it to the peer's
   * endpoint. False when there is no usable session (the caller stages the packet).
   */
  boolean sealAndSend(Peer peer, byte[] packet, int off, int len) {
    Keypair keypair = peer.currentKeypair();
    if (keypair == null || !device.reachable(peer)) {
      return false;
    }
    long now = System.nanoTime();
    Timing timing = device.timing();
    if (now - keypair.createdNanos() >= timing.rejectAfterTime()) {
      return false;
    }
    long counter = keypair.nextSendCounter();
    if (Long.compareUnsigned(counter, timing.rejectAfterMessages()) >= 0) {
      return false;
    }
    int paddedLength = paddedLength(len, device.mtu());
    System.arraycopy(packet, off, padded, 0, len);
    Arrays.fill(padded, len, paddedLength, (byte) 0);
    Message.writeTransportHeader(wire, 0, keypair.remoteIndex(), counter);
    int sealed =
        aead.seal(
            keypair.sendKey(),
            counter,
            padded,
            0,
            paddedLength,
            null,
            wire,
            Message.TRANSPORT_HEADER_LENGTH);
    int wireLength = Message.TRANSPORT_HEADER_LENGTH + sealed;

    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketSent();
    if (len > 0) {
      peer.timers.dataSent(now);
    }
    // Counted before the send so a reader who saw the packet arrive also sees it counted.
    peer.txBytes.addAndGet(wireLength);
    device.sendToPeer(peer, wire, wireLength);
    peer.keepKeyFreshSending(keypair, counter, now);
    return true;
  }
}
