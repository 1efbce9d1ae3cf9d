package dev.trellis.dataplane.wireguard;

import dev.trellis.proto.wireguard.ChaChaPoly;
import dev.trellis.proto.wireguard.Keypair;
import dev.trellis.proto.wireguard.Message;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.Arrays;

/**
 * The receive loop: datagrams from the UDP socket. Transport data is opened here, on this thread,
 * checked against the peer's allowed IPs and the {@link InboundFilter}, and written to the tunnel;
 * handshake messages are copied to the control thread. Anything malformed, unauthenticated or
 * filtered is counted and dropped.
 */
final class InboundPath implements Runnable {
  private static final int IPV4_HEADER = 20;
  private static final int IPV6_HEADER = 40;

  private final Device device;
  private final ChaChaPoly aead = new ChaChaPoly();
  private final byte[] datagram = new byte[Device.MAX_PACKET + Message.TRANSPORT_MIN_LENGTH];
  private final ByteBuffer datagramBuffer = ByteBuffer.wrap(datagram);
  private final byte[] plain = new byte[Device.MAX_PACKET + Message.TRANSPORT_MIN_LENGTH];
  private final ByteBuffer toTunnel =
      ByteBuffer.allocateDirect(Device.MAX_PACKET + Message.TRANSPORT_MIN_LENGTH);

  InboundPath(Device device) {
    this.device = device;
  }

  @Override
  public void run() {
    while (device.running()) {
      UdpBind bind = device.bind();
      if (bind == null) {
        Thread.onSpinWait();
        continue;
      }
      SocketAddress source;
      try {
        datagramBuffer.clear();
        source = bind.receive(datagramBuffer);
      } catch (ClosedChannelException e) {
        continue; // rebinding to a new port, or shutting down
      } catch (IOException e) {
        Device.LOG.debug("receive failed", e);
        continue;
      }
      if (source instanceof InetSocketAddress from) {
        try {
          handle(datagramBuffer.position(), from);
        } catch (IOException e) {
          device.tunnelGone();
          return;
        } catch (RuntimeException e) {
          device.counters().malformed.increment();
          Device.LOG.warn("dropped a datagram that broke the inbound path", e);
        }
      }
    }
  }

  /**
   * A message from outside the socket (another transport): copied in, then handled with no UDP
   * source.
   */
  synchronized void handleExternal(byte[] message, int length) throws IOException {
    if (length < 0 || length > datagram.length) {
      device.counters().malformed.increment();
      return;
    }
    System.arraycopy(message, 0, datagram, 0, length);
    handle(length, null);
  }

  /**
   * Process one message of {@code length} bytes in {@link #datagram}; {@code source} null = from
   * another transport.
   */
  void handle(int length, InetSocketAddress source) throws IOException {
    int type = Message.typeOf(datagram, 0, length);
    switch (type) {
      case Message.TYPE_TRANSPORT -> openTransport(length, source);
      case Message.TYPE_INITIATION, Message.TYPE_RESPONSE, Message.TYPE_COOKIE_REPLY ->
          device.handshakes().enqueue(Arrays.copyOf(datagram, length), source);
      default -> {
        DatagramTap tap = device.tap();
        if (tap == null || source == null || !tap.offer(datagram, length, source)) {
          device.counters().malformed.increment();
        }
      }
    }
  }

  private void openTransport(int length, InetSocketAddress source) throws IOException {
    int receiver = Message.readInt(datagram, Message.TRANSPORT_OFFSET_RECEIVER);
    long counter = Message.readLong(datagram, Message.TRANSPORT_OFFSET_COUNTER);
    IndexTable.Entry entry = device.indexTable().lookup(receiver);
    Keypair keypair = entry == null ? null : entry.keypair();
    if (keypair == null || !entry.peer().ownsKeypair(keypair)) {
      device.counters().unknownIndex.increment();
      return;
    }
    Peer peer = entry.peer();
    long now = System.nanoTime();
    Timing timing = device.timing();
    if (now - keypair.createdNanos() >= timing.rejectAfterTime()) {
      device.counters().expiredSession.increment();
      return;
    }
    int plainLength =
        aead.open(
            keypair.receiveKey(),
            counter,
            datagram,
            Message.TRANSPORT_HEADER_LENGTH,
            length - Message.TRANSPORT_HEADER_LENGTH,
            null,
            plain,
            0);
    if (plainLength < 0) {
      device.counters().decryptFailed.increment();
      return;
    }
    // Only after authentication, so forged counters cannot move the window.
    if (!keypair.acceptCounter(counter)) {
      device.counters().replayed.increment();
      return;
    }
    if (peer.confirmIfNext(keypair)) {
      peer.timers.handshakeComplete();
      device.runOnControlThread(() -> peer.sendStaged(device.controlSealer()));
    }
    peer.keepKeyFreshReceiving(keypair, now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketReceived();
    if (source != null) {
      peer.roamTo(source);
    }
    peer.rxBytes.addAndGet(length);
    if (plainLength == 0) {
      return; // keepalive
    }
    peer.timers.dataReceived(now);

    int packetLength = ipPacketLength(plain, plainLength);
    if (packetLength < 0) {
      device.counters().malformed.increment();
      return;
    }
    if (device.allowedIps().lookup(plain, 0, packetLength, true) != peer) {
      device.counters().disallowedSource.increment();
      return;
    }
    MulticastRouter router = device.multicastRouter();
    if (router != null
        && MulticastRouter.isMulticast(plain, 0, packetLength)
        && !router.accepts(plain, 0, packetLength)) {
      device.counters().multicastRefused.increment();
      return;
    }
    InboundFilter filter = device.inboundFilter();
    if (filter != null && !filter.accept(plain, 0, packetLength)) {
      device.counters().filtered.increment();
      return;
    }
    toTunnel.clear();
    toTunnel.put(plain, 0, packetLength).flip();
    // False means the link is down or going away: the packet is lost, as on a real NIC. The
    // outbound path notices a vanished tunnel and takes the device down.
    if (!device.tunnel().write(toTunnel)) {
      device.counters().tunnelWriteDropped.increment();
    }
  }

  /**
   * The IP packet's own length (padding stripped), or -1 when the header is not a sane IPv4/IPv6
   * one.
   */
  static int ipPacketLength(byte[] packet, int available) {
    if (available < 1) {
      return -1;
    }
    int version = (packet[0] & 0xff) >>> 4;
    int total;
    if (version == 4 && available >= IPV4_HEADER) {
      total = ((packet[2] & 0xff) << 8) | (packet[3] & 0xff);
      if (total < IPV4_HEADER) {
        return -1;
      }
    } else if (version == 6 && available >= IPV6_HEADER) {
      total = IPV6_HEADER + (((packet[4] & 0xff) << 8) | (packet[5] & 0xff));
    } else {
      return -1;
    }
    return total <= available ? total : -1;
  }
}
