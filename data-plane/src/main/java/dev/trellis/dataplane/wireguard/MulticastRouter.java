package dev.trellis.dataplane.wireguard;

/**
 * Where multicast goes. WireGuard routes by destination, and a multicast destination belongs to no
 * peer (unless a peer's allowed IPs cover it, e.g. 0.0.0.0/0, as in plain WireGuard), so the device
 * asks this instead: for a datagram read from the tunnel, which peers get a copy (each sealed for
 * that peer and sent over whatever path it has); for one opened from a peer, whether this node
 * takes multicast at all. The {@link InboundFilter} still decides on each packet that is taken, as
 * for unicast. Without one the device is plain WireGuard: multicast no peer covers has no route,
 * and multicast from a peer is written like any other packet.
 *
 * <p>Called on the packet threads: {@link #targets} on the outbound thread only, {@link #accepts}
 * on the inbound threads. Implementations must not block and should not throw.
 */
public interface MulticastRouter {
  /**
   * The public keys of the peers that get a copy of the IP packet {@code packet[offset,
   * offset+length)} read from the tunnel (its destination is multicast); none: it is dropped. The
   * buffer is reused after the call.
   */
  byte[][] targets(byte[] packet, int offset, int length);

  /** Whether a multicast IP packet from a peer may be written to the tunnel (before the filter). */
  boolean accepts(byte[] packet, int offset, int length);

  /** Whether the IP packet's destination is a multicast address (IPv4 224/4, IPv6 ff00::/8). */
  static boolean isMulticast(byte[] packet, int offset, int length) {
    if (length < 1) return false;
    int version = (packet[offset] & 0xff) >>> 4;
    if (version == 4 && length >= 20) return (packet[offset + 16] & 0xf0) == 0xe0;
    if (version == 6 && length >= 40) return (packet[offset + 24] & 0xff) == 0xff;
    return false;
  }
}
