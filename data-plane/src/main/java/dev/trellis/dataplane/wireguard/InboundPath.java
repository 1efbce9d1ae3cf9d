package dev.trellis.dataplane.wireguard;

import dev.trellis.dataplane.offload.GroCoalescer;
import dev.trellis.dataplane.tun.PacketTunnel;
import dev.trellis.proto.wireguard.ChaChaPoly;
import dev.trellis.proto.wireguard.Keypair;
import dev.trellis.proto.wireguard.Message;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The receive loop: datagrams from the UDP socket. Transport data is opened here, on this thread,
 * checked against the peer's allowed IPs and the {@link InboundFilter}, and written to the tunnel;
 * handshake messages are copied to the control thread. Anything malformed, unauthenticated or
 * filtered is counted and dropped.
 *
 * <p>One receive may bring many datagrams of one sender (UDP GRO); they are opened one by one into
 * {@link #plain}, side by side, and when the tunnel takes offloads a {@link GroCoalescer} joins the
 * TCP segments among them into large packets, written when the batch is done.
 */
final class InboundPath implements Runnable {
  private static final int IPV4_HEADER = 20;
  private static final int IPV6_HEADER = 40;

  private final Device device;
  private final ChaChaPoly aead = new ChaChaPoly();
  private final UdpBind.Received received;
  private final byte[] datagram;
  private final byte[] plain;

  /** Where the next opened packet goes in {@link #plain} (the batch's packets stay till flush). */
  private int plainEnd;

  private final GroCoalescer coalescer;
  private final GroCoalescer.Sink toOffloadedTunnel;
  private final ByteBuffer toTunnel =
      ByteBuffer.allocateDirect(Device.MAX_PACKET + Message.TRANSPORT_MIN_LENGTH);

  /** The socket's receive loop: room for a GRO batch. */
  InboundPath(Device device) {
    this(device, LinuxUdpBind.RECEIVE_CAPACITY);
  }

  private InboundPath(Device device, int capacity) {
    this.device = device;
    this.received = new UdpBind.Received(capacity);
    this.datagram = received.data;
    this.plain = new byte[capacity];
    PacketTunnel tunnel = device.tunnel();
    this.coalescer = tunnel.offloads() ? new GroCoalescer() : null;
    this.toOffloadedTunnel =
        packet -> {
          // False: the link is down or going away; the packet is lost, as on a real NIC.
          boolean written = tunnel.writeOffloaded(packet);
          if (!written) {
            device.counters().tunnelWriteDropped.increment();
          }
          return written;
        };
  }

  /** For messages from other transports (a relay): one message at a time. */
  static InboundPath forExternalMessages(Device device) {
    return new InboundPath(device, Device.MAX_PACKET + Message.TRANSPORT_MIN_LENGTH);
  }

  @Override
  public void run() {
    while (device.running()) {
      UdpBind bind = device.bind();
      if (bind == null) {
        Thread.onSpinWait();
        continue;
      }
      try {
        if (!bind.receive(received)) {
          continue; // rebinding to a new port, or shutting down
        }
      } catch (IOException e) {
        Device.LOG.debug("receive failed", e);
        continue;
      }
      InetSocketAddress from = received.source;
      if (from == null) {
        continue;
      }
      try {
        int length = received.length;
        int segment = Math.max(1, received.segmentSize);
        int off = 0;
        do { // an empty datagram is one too (and malformed)
          try {
            handle(off, Math.min(segment, length - off), from);
          } catch (RuntimeException e) {
            device.counters().malformed.increment();
            Device.LOG.warn("dropped a datagram that broke the inbound path", e);
          }
          off += segment;
        } while (off < length);
        flush();
      } catch (IOException e) {
        device.tunnelGone();
        return;
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
    try {
      handle(0, length, null);
    } finally {
      flush();
    }
  }

  /** Writes what the batch joined; the next batch's packets start at the front again. */
  private void flush() throws IOException {
    plainEnd = 0;
    if (coalescer != null) {
      coalescer.flush(toOffloadedTunnel);
    }
  }

  /**
   * Process one message of {@code length} bytes at {@code datagram[off]}; {@code source} null =
   * from another transport.
   */
  void handle(int off, int length, InetSocketAddress source) throws IOException {
    int type = Message.typeOf(datagram, off, length);
    switch (type) {
      case Message.TYPE_TRANSPORT -> openTransport(off, length, source);
      case Message.TYPE_INITIATION, Message.TYPE_RESPONSE, Message.TYPE_COOKIE_REPLY ->
          device.handshakes().enqueue(Arrays.copyOfRange(datagram, off, off + length), source);
      default -> {
        DatagramTap tap = device.tap();
        byte[] bytes = off == 0 ? datagram : Arrays.copyOfRange(datagram, off, off + length);
        if (tap == null || source == null || !tap.offer(bytes, length, source)) {
          device.counters().malformed.increment();
        }
      }
    }
  }

  private void openTransport(int off, int length, InetSocketAddress source) throws IOException {
    int receiver = Message.readInt(datagram, off + Message.TRANSPORT_OFFSET_RECEIVER);
    long counter = Message.readLong(datagram, off + Message.TRANSPORT_OFFSET_COUNTER);
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
    int at = plainEnd;
    int plainLength =
        aead.open(
            keypair.receiveKey(),
            counter,
            datagram,
            off + Message.TRANSPORT_HEADER_LENGTH,
            length - Message.TRANSPORT_HEADER_LENGTH,
            null,
            plain,
            at);
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

    int packetLength = ipPacketLength(plain, at, plainLength);
    if (packetLength < 0) {
      device.counters().malformed.increment();
      return;
    }
    if (device.allowedIps().lookup(plain, at, packetLength, true) != peer) {
      device.counters().disallowedSource.increment();
      return;
    }
    MulticastRouter router = device.multicastRouter();
    if (router != null
        && MulticastRouter.isMulticast(plain, at, packetLength)
        && !router.accepts(plain, at, packetLength)) {
      device.counters().multicastRefused.increment();
      return;
    }
    InboundFilter filter = device.inboundFilter();
    if (filter != null && !filter.accept(plain, at, packetLength)) {
      device.counters().filtered.increment();
      return;
    }
    if (coalescer != null) {
      coalescer.add(plain, at, packetLength);
      plainEnd = at + packetLength;
      return;
    }
    toTunnel.clear();
    toTunnel.put(plain, at, packetLength).flip();
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
    return ipPacketLength(packet, 0, available);
  }

  static int ipPacketLength(byte[] packet, int off, int available) {
    if (available < 1) {
      return -1;
    }
    int version = (packet[off] & 0xff) >>> 4;
    int total;
    if (version == 4 && available >= IPV4_HEADER) {
      total = ((packet[off + 2] & 0xff) << 8) | (packet[off + 3] & 0xff);
      if (total < IPV4_HEADER) {
        return -1;
      }
    } else if (version == 6 && available >= IPV6_HEADER) {
      total = IPV6_HEADER + (((packet[off + 4] & 0xff) << 8) | (packet[off + 5] & 0xff));
    } else {
      return -1;
    }
    return total <= available ? total : -1;
  }
}
