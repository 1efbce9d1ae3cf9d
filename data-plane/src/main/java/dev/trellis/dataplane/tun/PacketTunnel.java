package dev.trellis.dataplane.tun;

import java.io.IOException;
import java.nio.ByteBuffer;

/** Where a WireGuard device reads outgoing IP packets and writes incoming ones: a TUN device. */
public interface PacketTunnel extends AutoCloseable {
  String name();

  int mtu();

  /** One packet into {@code dst} at its position; -1 once the tunnel is closed or gone. */
  int read(ByteBuffer dst) throws IOException;

  /** One packet from {@code src}'s remaining bytes; false once the tunnel is closed or gone. */
  boolean write(ByteBuffer src) throws IOException;

  /** One packet into {@code dst} from index 0 (the reading thread's own array); -1 at the end. */
  default int read(byte[] dst) throws IOException {
    return read(ByteBuffer.wrap(dst));
  }

  /** Whether {@link #read} has packets from an earlier large read and will not block. */
  default boolean hasBufferedReads() {
    return false;
  }

  /** Whether {@link #writeOffloaded} takes large packets behind a virtio-net header. */
  default boolean offloads() {
    return false;
  }

  /** A virtio-net header and a packet, possibly coalesced from many ({@link #offloads} only). */
  default boolean writeOffloaded(ByteBuffer headerAndPacket) throws IOException {
    throw new UnsupportedOperationException(name() + " takes no offloaded packets");
  }

  @Override
  void close();
}
