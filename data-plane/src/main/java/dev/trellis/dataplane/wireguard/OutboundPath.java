package dev.trellis.dataplane.wireguard;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The send loop: IP packets from the tunnel, routed to a peer by destination (allowed IPs), shown
 * to the {@link InboundFilter} (so it knows what replies to expect), sealed and sent on this
 * thread; multicast goes to the peers the {@link MulticastRouter} names, a copy each. Without a
 * session the packet waits in the peer's queue and a handshake is requested.
 */
final class OutboundPath implements Runnable {
  private final Device device;
  private final PacketSealer sealer;
  private final ByteBuffer fromTunnel = ByteBuffer.allocateDirect(Device.MAX_PACKET);
  private final byte[] packet = new byte[Device.MAX_PACKET];

  OutboundPath(Device device) {
    this.device = device;
    this.sealer = new PacketSealer(device);
  }

  @Override
  public void run() {
    while (device.running()) {
      int length;
      try {
        fromTunnel.clear();
        length = device.tunnel().read(fromTunnel);
      } catch (IOException e) {
        Device.LOG.warn("reading the tunnel failed", e);
        length = -1;
      }
      if (length < 0) {
        device.tunnelGone();
        return;
      }
      fromTunnel.flip();
      fromTunnel.get(packet, 0, length);
      route(length);
    }
  }

  private void route(int length) {
    Peer peer = device.allowedIps().lookup(packet, 0, length, false);
    if (peer == null) {
      // As in plain WireGuard a peer whose allowed IPs cover a group (0.0.0.0/0) gets its
      // multicast; only what no peer covers is the router's.
      if (MulticastRouter.isMulticast(packet, 0, length)) {
        fanOut(length);
      } else {
        device.counters().noRoute.increment();
      }
      return;
    }
    InboundFilter filter = device.inboundFilter();
    if (filter != null) {
      try {
        filter.outbound(packet, 0, length);
      } catch (RuntimeException e) {
        Device.LOG.warn("the inbound filter failed on an outbound packet", e); // still send it
      }
    }
    send(peer, length);
  }

  /** A multicast datagram: a copy to each peer the router names, over each one's own path. */
  private void fanOut(int length) {
    MulticastRouter router = device.multicastRouter();
    byte[][] targets;
    try {
      targets = router == null ? null : router.targets(packet, 0, length);
    } catch (RuntimeException e) {
      Device.LOG.warn("the multicast router failed", e);
      targets = null;
    }
    if (targets == null || targets.length == 0) {
      device.counters().noRoute.increment();
      return;
    }
    for (byte[] key : targets) {
      Peer peer = device.peerByPublicKey(key);
      if (peer != null) {
        send(peer, length);
      }
    }
  }

  private void send(Peer peer, int length) {
    if (!sealer.sealAndSend(peer, packet, 0, length)) {
      peer.stage(Arrays.copyOf(packet, length));
      peer.requestHandshake();
    }
  }
}
