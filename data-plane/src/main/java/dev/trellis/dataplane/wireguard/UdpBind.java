package dev.trellis.dataplane.wireguard;

import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;

/** The UDP socket a device speaks WireGuard on: dual-stack where the host has IPv6, else IPv4. */
final class UdpBind implements AutoCloseable {
  private static final int SOCKET_BUFFER_BYTES = 4 << 20;
  private final DatagramChannel channel;
  private final int port;

  private UdpBind(DatagramChannel channel) throws IOException {
    this.channel = channel;
    this.port = ((InetSocketAddress) channel.getLocalAddress()).getPort();
  }

  static UdpBind open(int port) throws IOException {
    DatagramChannel channel;
    try {
      channel = DatagramChannel.open(StandardProtocolFamily.INET6);
      channel.bind(new InetSocketAddress("::", port));
    } catch (IOException | UnsupportedOperationException e) {
      if (e instanceof BindException) {
        throw e;
      }
      channel = DatagramChannel.open(StandardProtocolFamily.INET);
      channel.bind(new InetSocketAddress("0.0.0.0", port));
    }
    channel.setOption(StandardSocketOptions.SO_RCVBUF, SOCKET_BUFFER_BYTES);
    channel.setOption(StandardSocketOptions.SO_SNDBUF, SOCKET_BUFFER_BYTES);
    return new UdpBind(channel);
  }

  int port() {
    return port;
  }

  SocketAddress receive(ByteBuffer dst) throws IOException {
    return channel.receive(dst);
  }

  void send(ByteBuffer src, InetSocketAddress to) throws IOException {
    channel.send(src, to);
  }

  @Override
  public void close() {
    try {
      channel.close();
    } catch (IOException ignored) {
      // closing a datagram socket has nothing to flush
    }
  }
}
