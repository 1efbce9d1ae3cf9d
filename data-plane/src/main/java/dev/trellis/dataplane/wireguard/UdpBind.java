package dev.trellis.dataplane.wireguard;

import dev.trellis.dataplane.offload.Offloads;
import java.io.IOException;
import java.net.InetSocketAddress;

/**
 * The UDP socket a device speaks WireGuard on: dual-stack where the host has IPv6, else IPv4.
 * {@link LinuxUdpBind} sends a run of equal-sized datagrams in one call (UDP GSO) and takes many in
 * one (UDP GRO); {@link ChannelUdpBind} is the portable one, a datagram per call.
 */
sealed interface UdpBind extends AutoCloseable permits ChannelUdpBind, LinuxUdpBind {

  /** Socket buffers large enough for a burst of full-sized batches. */
  int SOCKET_BUFFER_BYTES = 4 << 20;

  /** What one {@link #receive} got: datagrams of {@code segmentSize} bytes back to back. */
  final class Received {
    final byte[] data;
    int length;
    int segmentSize;
    InetSocketAddress source;

    Received(int capacity) {
      this.data = new byte[capacity];
    }
  }

  static UdpBind open(int port, Offloads offloads) throws IOException {
    if (offloads.udpGso() || offloads.udpGro()) {
      UdpBind linux = LinuxUdpBind.tryOpen(port, offloads.udpGso(), offloads.udpGro());
      if (linux != null) {
        return linux;
      }
    }
    return ChannelUdpBind.open(port);
  }

  int port();

  /**
   * Waits for datagrams from one source into {@code into.data}: one, or with GRO several of {@code
   * segmentSize} bytes (the last may be shorter).
   *
   * @return false when the socket was closed (a rebind or shutdown)
   */
  boolean receive(Received into) throws IOException;

  void send(byte[] datagram, int off, int length, InetSocketAddress to) throws IOException;

  /**
   * Sends {@code buf[off, off+length)} as datagrams of {@code segmentSize} bytes (the last may be
   * shorter), in one call where the socket can.
   */
  void sendSegments(byte[] buf, int off, int length, int segmentSize, InetSocketAddress to)
      throws IOException;

  /** Whether {@link #sendSegments} uses UDP GSO (for status and tests). */
  boolean segmentsInOneCall();

  /** Whether {@link #receive} may return several datagrams (UDP GRO). */
  boolean coalescesReceives();

  @Override
  void close();
}
