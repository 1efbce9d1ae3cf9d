package dev.trellis.dataplane.wireguard;

import java.net.InetSocketAddress;

/**
 * Takes the datagrams on the WireGuard UDP socket that are not WireGuard messages, so other
 * protocols (the agent's path discovery, STUN answers) can share the socket and its NAT mapping. A
 * WireGuard message starts with a type 1-4 and three zero bytes and has a fixed or minimum length;
 * anything else is offered here before it is counted as malformed.
 */
public interface DatagramTap {
  /**
   * Called on the inbound thread; {@code buf} is reused after the call returns, so copy what you
   * keep. Must not block.
   *
   * @return true if the datagram was taken, false to count it as malformed
   */
  boolean offer(byte[] buf, int length, InetSocketAddress source);
}
