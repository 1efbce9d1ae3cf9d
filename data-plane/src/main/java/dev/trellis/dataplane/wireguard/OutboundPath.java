package dev.trellis.dataplane.wireguard;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.Arrays;

/**
 * The send loop: IP packets from the tunnel, routed to a peer by destination (allowed IPs), shown
 * to the {@link InboundFilter} (so it knows what replies to expect), sealed and sent on this
 * thread; multicast goes to the peers the {@link MulticastRouter} names, a copy each. Without a
 * session the packet waits in the peer's queue and a handshake is requested.
 *
 * <p>When the socket sends runs in one call (UDP GSO), the datagrams sealed for one destination
 * from one tunnel read (a large TSO packet split into dozens) are gathered in {@link #batch} and
 * leave together once the read is used up, before the thread can block on the tunnel again.
 */
final class OutboundPath implements Runnable {
  private final Device device;
  private final PacketSealer sealer;
  private final byte[] packet = new byte[Device.MAX_PACKET];

  // The run being gathered: equal-sized datagrams (the last may be shorter) to one destination.
  private final byte[] run = new byte[LinuxUdpBind.MAX_SEGMENTED_BYTES];
  private int runLength;
  private int runSegment;
  private int runCount;
  private InetSocketAddress runTo;
  private UdpBind runBind;

  OutboundPath(Device device) {
    this.device = device;
    this.sealer = new PacketSealer(device);
  }

  @Override
  public void run() {
    while (device.running()) {
      int length;
      try {
        length = device.tunnel().read(packet);
      } catch (IOException e) {
        Device.LOG.warn("reading the tunnel failed", e);
        length = -1;
      }
      if (length < 0) {
        flushRun();
        device.tunnelGone();
        return;
      }
      route(length);
      if (runCount > 0 && !device.tunnel().hasBufferedReads()) {
        flushRun();
      }
    }
  }

  /** Called (through the device) for each datagram this thread sends on a socket with GSO. */
  void batch(UdpBind bind, byte[] wire, int length, InetSocketAddress to) {
    if (runCount > 0
        && (bind != runBind
            || length > runSegment
            || runLength % runSegment != 0 // the last one was short: the run is closed
            || runLength + length > run.length
            || runCount == LinuxUdpBind.MAX_SEGMENTS
            || !(to == runTo || to.equals(runTo)))) {
      flushRun();
    }
    if (runCount == 0) {
      runBind = bind;
      runTo = to;
      runSegment = length;
    }
    System.arraycopy(wire, 0, run, runLength, length);
    runLength += length;
    runCount++;
  }

  private void flushRun() {
    if (runCount == 0) {
      return;
    }
    try {
      runBind.sendSegments(run, 0, runLength, runSegment, runTo);
    } catch (IOException e) {
      Device.LOG.debug("send to " + runTo + " failed", e);
    } finally {
      runCount = 0;
      runLength = 0;
      runBind = null;
      runTo = null;
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
