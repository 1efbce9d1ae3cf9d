package dev.trellis.dataplane.wireguard;

/**
 * Decides which decrypted packets from peers reach the tunnel (an access policy, a stateful
 * firewall). The device knows no policy: it shows the filter every packet it routes out and asks it
 * about every authenticated packet it is about to write in, whichever way it came (UDP or {@link
 * Device#receive}). Without one, everything authenticated from its peer's allowed IPs is written,
 * as plain WireGuard does.
 *
 * <p>Called on the packet threads: {@link #outbound} on the outbound (tunnel-reading) thread,
 * {@link #accept} on the inbound thread and on the callers of {@link Device#receive}, possibly at
 * the same time. Implementations must not block, must not allocate per call and should not throw
 * (an inbound packet that makes {@link #accept} throw is dropped as malformed).
 */
public interface InboundFilter {
  /**
   * Whether the IP packet {@code packet[offset, offset+length)} (its exact length, padding
   * stripped) may be written to the tunnel. The buffer is reused after the call.
   */
  boolean accept(byte[] packet, int offset, int length);

  /**
   * An IP packet read from the tunnel and routed to a peer (before it is sealed), so replies to it
   * can be recognised. The buffer is reused after the call.
   */
  void outbound(byte[] packet, int offset, int length);
}
