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

  @Override
  void close();
}
