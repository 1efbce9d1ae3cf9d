package dev.trellis.dataplane.wireguard;

import java.net.InetSocketAddress;

/**
 * Where the device's WireGuard messages for a peer go (compare wireguard-go's {@code conn.Bind}).
 * Without one the device sends every message by UDP to the peer's endpoint, as plain WireGuard
 * does; the node agent installs one that picks, per peer, a direct UDP path or a relay. Called on
 * the packet threads: implementations must not block and must not allocate per call.
 */
public interface PeerTransport {
  /**
   * Sends one WireGuard message to the peer.
   *
   * @param endpoint the peer's UDP endpoint as WireGuard knows it (configured or roamed), null if
   *     none
   * @return false when the message was dropped or there is nowhere to send it
   */
  boolean send(byte[] peerKey, InetSocketAddress endpoint, byte[] message, int length);

  /** Whether {@link #send} has anywhere to put this peer's messages now. */
  boolean canReach(byte[] peerKey, InetSocketAddress endpoint);

  /**
   * Answers a message that arrived through {@link Device#receive} (not the UDP socket) the way it
   * came, e.g. a handshake response to an initiation that came through a relay.
   */
  boolean reply(byte[] peerKey, byte[] message, int length);
}
