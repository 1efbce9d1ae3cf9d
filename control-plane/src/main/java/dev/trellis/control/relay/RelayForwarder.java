package dev.trellis.control.relay;

import dev.trellis.proto.relay.RelayFrame;
import java.util.HashMap;
import java.util.Map;
import org.apache.pekko.util.ByteString;

/**
 * The hot path of one authenticated connection, run by its inbound stream (one frame at a time,
 * never concurrently): SendPacket becomes RecvPacket on the destination's queue without copying the
 * packet (the header is swapped by concatenation), or a ForwardPacket to the relay of the mesh that
 * holds the destination; Ping is answered; a ForwardPacket from another relay is delivered to this
 * relay's node only. Anything else the peer may not send fails the stream and so closes this
 * connection only.
 */
final class RelayForwarder {
  /** At most one PeerGone(not connected) per destination per this many nanoseconds. */
  static final long PEER_GONE_INTERVAL_NANOS = 1_000_000_000L;

  private static final int MAX_TRACKED = 4096;

  private final RelayRegistry registry;
  private final RelayRegistry.Client self;
  private final RelayMesh mesh;

  /** Destinations this connection has already recorded itself as a sender with. */
  private final Map<RelayKey, RelayRegistry.Client> knownDestinations = new HashMap<>();

  private final Map<RelayKey, Long> peerGoneSent = new HashMap<>();

  /** The destination of this connection's last SendPacket, for SendSame. */
  private RelayKey lastDestination;

  RelayForwarder(RelayRegistry registry, RelayRegistry.Client self, RelayMesh mesh) {
    this.registry = registry;
    this.self = self;
    this.mesh = mesh;
  }

  void onFrame(ByteString frame) throws RelayFrame.FormatException {
    int length = frame.size();
    registry.framesIn.increment();
    registry.bytesIn.add(length);
    if (length == 0) {
      throw new RelayFrame.FormatException("empty relay frame");
    }
    byte type = frame.apply(0);
    RelayFrame.validate(type, length);
    switch (type) {
      case RelayFrame.FORWARD_PACKET -> {
        if (!self.mesh) {
          throw new RelayFrame.FormatException(
              "ForwardPacket frames are only sent by relays of the cluster");
        }
        deliverForwarded(frame, length);
      }
      case RelayFrame.SEND_PACKET -> {
        lastDestination = RelayKey.of(frame, 1);
        forward(
            lastDestination,
            frame.drop(RelayFrame.PACKET_HEADER),
            length - RelayFrame.PACKET_HEADER);
      }
      case RelayFrame.SEND_SAME -> {
        if (lastDestination == null) {
          throw new RelayFrame.FormatException("SendSame before any SendPacket");
        }
        forward(lastDestination, frame.drop(1), length - 1);
      }
      case RelayFrame.PING -> {
        byte[] pong = frame.toArray();
        pong[0] = RelayFrame.PONG;
        RelayRegistry.offerControl(self, ByteString.fromArrayUnsafe(pong));
      }
      case RelayFrame.PONG, RelayFrame.KEEP_ALIVE -> {}
      default ->
          throw new RelayFrame.FormatException(
              RelayFrame.typeName(type) + " frames are not sent by nodes");
    }
  }

  private void forward(RelayKey destination, ByteString packet, int packetLength) {
    RelayRegistry.Client target = registry.get(destination);
    if (target == null) {
      if (mesh != null && !self.mesh && mesh.forward(self.key, destination, packet)) {
        return;
      }
      registry.unknownDestination.increment();
      peerGone(destination);
      return;
    }
    if (knownDestinations.get(destination) != target) {
      if (knownDestinations.size() >= MAX_TRACKED) {
        knownDestinations.clear();
      }
      knownDestinations.put(destination, target);
      target.senders.add(self.key);
    }
    registry.offerPacket(target, self.recvHeader.concat(packet), packetLength);
  }

  /** A packet another relay forwarded: to this relay's node, or dropped — never forwarded again. */
  private void deliverForwarded(ByteString frame, int length) {
    RelayRegistry.Client target = registry.get(RelayKey.of(frame, 1 + RelayFrame.KEY_LENGTH));
    if (mesh != null) {
      mesh.received.increment();
    }
    if (target == null) {
      registry.unknownDestination.increment();
      return;
    }
    ByteString header = RECV_TYPE.concat(frame.slice(1, 1 + RelayFrame.KEY_LENGTH));
    registry.offerPacket(
        target,
        header.concat(frame.drop(RelayFrame.FORWARD_HEADER)),
        length - RelayFrame.FORWARD_HEADER);
  }

  private static final ByteString RECV_TYPE =
      ByteString.fromArrayUnsafe(new byte[] {RelayFrame.RECV_PACKET});

  private void peerGone(RelayKey destination) {
    long now = System.nanoTime();
    Long last = peerGoneSent.get(destination);
    if (last != null && now - last < PEER_GONE_INTERVAL_NANOS) {
      return;
    }
    if (peerGoneSent.size() >= MAX_TRACKED) {
      peerGoneSent.clear();
    }
    peerGoneSent.put(destination, now);
    RelayRegistry.offerControl(
        self,
        RelayConnection.frame(
            new RelayFrame.PeerGone(destination.bytes(), RelayFrame.GONE_NOT_CONNECTED)));
  }
}
