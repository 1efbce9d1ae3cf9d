package dev.trellis.dataplane.wireguard;

import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;

/** The portable UDP socket: a JDK {@link DatagramChannel}, one datagram per call. */
final class ChannelUdpBind implements UdpBind {
  private final DatagramChannel channel;
  private final int port;

  private ChannelUdpBind(DatagramChannel channel) throws IOException {
    this.channel = channel;
    this.port = ((InetSocketAddress) channel.getLocalAddress()).getPort();
  }

  static ChannelUdpBind open(int port) throws IOException {
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
    return new ChannelUdpBind(channel);
  }

  @Override
  public int port() {
    return port;
  }

  @Override
  public boolean receive(Received into) throws IOException {
    ByteBuffer dst = ByteBuffer.wrap(into.data);
    SocketAddress source;
    try {
      source = channel.receive(dst);
    } catch (ClosedChannelException e) {
      return false;
    }
    into.length = dst.position();
    into.segmentSize = into.length;
    into.source = source instanceof InetSocketAddress a ? a : null;
    return true;
  }

  @Override
  public void send(byte[] datagram, int off, int length, InetSocketAddress to) throws IOException {
    channel.send(ByteBuffer.wrap(datagram, off, length), to);
  }

  @Override
  public void sendSegments(byte[] buf, int off, int length, int segmentSize, InetSocketAddress to)
      throws IOException {
    for (int o = off; o < off + length; o += segmentSize) {
      send(buf, o, Math.min(segmentSize, off + length - o), to);
    }
  }

  @Override
  public boolean segmentsInOneCall() {
    return false;
  }

  @Override
  public boolean coalescesReceives() {
    return false;
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
