package dev.trellis.dataplane.relay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.proto.relay.RelayFrame;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The raw transport against a scripted relay on loopback (a plain socket, so the test controls when
 * the relay reads): frames sent right behind the 101 reach the client, a Ping is answered, and
 * packets that pile up while the relay does not read all go out, in order, once it does.
 */
class RawRelayWireTest {
  private static final int TIMEOUT_SECONDS = 10;

  private final byte[] relayPrivate = Curve25519.generatePrivateKey();
  private final byte[] relayPublic = Curve25519.publicKey(relayPrivate);
  private final byte[] nodePrivate = Curve25519.generatePrivateKey();
  private ServerSocket listener;
  private Socket relaySide;
  private DataInputStream fromNode;
  private OutputStream toNode;
  private RelayClient client;

  @BeforeEach
  void listen() throws IOException {
    listener = new ServerSocket();
    // A small receive buffer, inherited by the accepted socket: a relay that stops reading backs
    // the node's socket up after a few kilobytes.
    listener.setReceiveBufferSize(4096);
    listener.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
  }

  @AfterEach
  void close() throws IOException {
    if (client != null) {
      client.close();
    }
    if (relaySide != null) {
      relaySide.close();
    }
    listener.close();
  }

  /** Connects a client; the relay side answers the upgrade, ServerHello in the same write. */
  private void connect() throws Exception {
    var connecting =
        RelayClient.connect(
            HttpClient.newHttpClient(),
            URI.create("http://127.0.0.1:" + listener.getLocalPort()),
            nodePrivate,
            relayPublic,
            new RelayClient.Listener() {
              @Override
              public void onPacket(byte[] srcKey, byte[] packet, int len) {}

              @Override
              public void onClosed(String reason) {}
            },
            RelayClient.Transport.RAW);
    relaySide = listener.accept();
    InputStream in = relaySide.getInputStream();
    readRequestHead(in);
    toNode = relaySide.getOutputStream();
    byte[] challenge = new byte[RelayFrame.NONCE_LENGTH];
    challenge[0] = 7;
    ByteArrayOutputStream answer = new ByteArrayOutputStream();
    answer.writeBytes(
        ("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "
                + RelayFrame.RAW_UPGRADE
                + "\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII));
    answer.writeBytes(lengthPrefixed(new RelayFrame.ServerHello(relayPublic, challenge)));
    toNode.write(answer.toByteArray());
    toNode.flush();
    fromNode = new DataInputStream(in);
    RelayFrame.Frame auth = RelayFrame.parse(readFrame());
    assertTrue(
        auth instanceof RelayFrame.ClientAuth a && RelayFrame.verify(relayPrivate, challenge, a),
        "the node proves its key against the challenge it got behind the 101");
    toNode.write(lengthPrefixed(new RelayFrame.ServerReady()));
    toNode.flush();
    client = connecting.get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
    assertEquals("raw", client.transport());
  }

  @Test
  void answersAPingFromTheRelay() throws Exception {
    connect();
    byte[] data = {1, 2, 3, 4, 5, 6, 7, 8};
    toNode.write(lengthPrefixed(new RelayFrame.Ping(data)));
    toNode.flush();
    RelayFrame.Frame pong = RelayFrame.parse(readFrame());
    assertTrue(pong instanceof RelayFrame.Pong, "got " + pong);
    assertArrayEquals(data, ((RelayFrame.Pong) pong).data());
  }

  @Test
  void packetsQueuedWhileTheRelayDoesNotReadAllGoOutInOrder() throws Exception {
    connect();
    byte[] destination = Curve25519.publicKey(Curve25519.generatePrivateKey());
    // 12 MB: more than the sockets hold even with the send buffer grown to its maximum (4 MB on
    // Linux by default), in fewer packets than the send queue takes.
    int count = 200;
    byte[] packet = new byte[60_000];
    for (int i = 0; i < count; i++) {
      ByteBuffer.wrap(packet).putInt(i);
      assertTrue(client.send(destination, packet, 0, packet.length), "queued packet " + i);
    }
    // The relay has not read anything: the socket is full and the rest waits on the node.
    assertTrue(client.hasFrames(), "packets are waiting for the socket");

    byte[] first = readFrame();
    assertEquals(RelayFrame.SEND_PACKET, first[0]);
    assertArrayEquals(destination, Arrays.copyOfRange(first, 1, 1 + RelayFrame.KEY_LENGTH));
    assertEquals(0, ByteBuffer.wrap(first, RelayFrame.PACKET_HEADER, 4).getInt());
    for (int i = 1; i < count; i++) {
      byte[] frame = readFrame();
      assertEquals(RelayFrame.SEND_SAME, frame[0], "frame " + i);
      assertEquals(1 + packet.length, frame.length, "frame " + i);
      assertEquals(i, ByteBuffer.wrap(frame, 1, 4).getInt(), "packets in order");
    }
    assertEquals(count, client.sent());
    assertEquals(0, client.dropped());
  }

  private byte[] readFrame() throws IOException {
    relaySide.setSoTimeout(TIMEOUT_SECONDS * 1000);
    int length = fromNode.readInt();
    assertTrue(length > 0 && length <= RelayFrame.MAX_FRAME, "frame length " + length);
    byte[] frame = new byte[length];
    fromNode.readFully(frame);
    return frame;
  }

  private static byte[] lengthPrefixed(RelayFrame.Frame frame) {
    byte[] body = RelayFrame.encode(frame);
    return ByteBuffer.allocate(RelayFrame.RAW_LENGTH_FIELD + body.length)
        .putInt(body.length)
        .put(body)
        .array();
  }

  private static void readRequestHead(InputStream in) throws IOException {
    int matched = 0;
    byte[] end = {'\r', '\n', '\r', '\n'};
    while (matched < end.length) {
      int c = in.read();
      if (c < 0) {
        throw new IOException("node closed during the upgrade request");
      }
      matched = c == end[matched] ? matched + 1 : c == '\r' ? 1 : 0;
    }
  }
}
