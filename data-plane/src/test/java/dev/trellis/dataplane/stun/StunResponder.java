package dev.trellis.dataplane.stun;

import dev.trellis.proto.stun.StunMessage;
import dev.trellis.proto.stun.StunMessage.Attribute;
import dev.trellis.proto.stun.StunMessage.MessageClass;
import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.util.List;

/**
 * A minimal STUN Binding responder for data-plane tests: every Binding request gets a success
 * response with XOR-MAPPED-ADDRESS; everything else is dropped. The real server is {@code
 * dev.trellis.control.stun.StunServer} in control-plane, which data-plane cannot see.
 */
public final class StunResponder implements AutoCloseable {
  private final DatagramChannel channel;
  private final int port;
  private final Thread thread;

  private StunResponder(DatagramChannel channel) throws IOException {
    this.channel = channel;
    this.port = ((InetSocketAddress) channel.getLocalAddress()).getPort();
    this.thread = Thread.ofPlatform().daemon().name("test-stun-" + port).unstarted(this::serve);
  }

  /** Binds {@code bind} (port 0 picks a free one) and starts answering. */
  public static StunResponder start(InetSocketAddress bind) throws IOException {
    DatagramChannel channel =
        DatagramChannel.open(
            bind.getAddress() instanceof Inet6Address
                ? StandardProtocolFamily.INET6
                : StandardProtocolFamily.INET);
    try {
      channel.bind(bind);
      StunResponder server = new StunResponder(channel);
      server.thread.start();
      return server;
    } catch (IOException | RuntimeException e) {
      channel.close();
      throw e;
    }
  }

  public int port() {
    return port;
  }

  /** The success response to a Binding request from {@code client}, or null for anything else. */
  static byte[] answer(byte[] data, int length, InetSocketAddress client) {
    StunMessage request = StunMessage.tryParse(data, 0, length);
    if (request == null || !request.isBindingRequest()) {
      return null;
    }
    byte[] tid = request.transactionId();
    return new StunMessage(
            StunMessage.METHOD_BINDING,
            MessageClass.SUCCESS_RESPONSE,
            tid,
            List.of(Attribute.xorMappedAddress(client, tid)))
        .encode(true);
  }

  private void serve() {
    ByteBuffer in = ByteBuffer.allocate(2048);
    while (channel.isOpen()) {
      try {
        in.clear();
        InetSocketAddress from = (InetSocketAddress) channel.receive(in);
        byte[] reply = answer(in.array(), in.position(), from);
        if (reply != null) {
          channel.send(ByteBuffer.wrap(reply), from);
        }
      } catch (IOException e) {
        // closed, or an ICMP error on the socket: the loop condition decides
      }
    }
  }

  @Override
  public void close() throws IOException {
    channel.close();
    try {
      thread.join(5_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
