package dev.trellis.dataplane.agent;

import dev.trellis.proto.control.ControlChannel;
import dev.trellis.proto.control.ControlHandshake;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Base64;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Just enough of the coordination server for unit tests: GET /key, and a WebSocket at /control (RFC
 * 6455 by hand, one connection at a time) running the real server handshake. The test drives each
 * connection: {@link #accept} waits for the next node, then send/receive messages.
 */
final class TinyControlServer implements AutoCloseable {
  final byte[] privateKey = Curve25519.generatePrivateKey();
  private final ControlHandshake.Server handshake = new ControlHandshake.Server(privateKey);
  private final ServerSocket listener;
  private final BlockingQueue<Connection> connections = new LinkedBlockingQueue<>();

  TinyControlServer() throws IOException {
    listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    Thread.ofVirtual().start(this::acceptLoop);
  }

  String url() {
    return "http://127.0.0.1:" + listener.getLocalPort();
  }

  Connection accept() throws InterruptedException {
    return accept(15);
  }

  /** The next node that connects, waiting up to {@code seconds}. */
  Connection accept(int seconds) throws InterruptedException {
    Connection c = connections.poll(seconds, TimeUnit.SECONDS);
    if (c == null) {
      throw new AssertionError("no node connected");
    }
    return c;
  }

  private void acceptLoop() {
    while (!listener.isClosed()) {
      try {
        Socket s = listener.accept();
        Thread.ofVirtual().start(() -> serve(s));
      } catch (IOException e) {
        return;
      }
    }
  }

  private void serve(Socket socket) {
    try {
      InputStream in = socket.getInputStream();
      OutputStream out = socket.getOutputStream();
      String request = readHead(in);
      String path = request.split(" ")[1];
      if (path.equals("/key")) {
        byte[] body =
            ("{\"publicKey\":\""
                    + Base64.getEncoder().encodeToString(handshake.publicKey())
                    + "\"}")
                .getBytes(StandardCharsets.UTF_8);
        out.write(
            ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + body.length
                    + "\r\nConnection: close\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
        out.write(body);
        out.flush();
        socket.close();
        return;
      }
      if (!path.equals("/control")) {
        out.write(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .getBytes(StandardCharsets.US_ASCII));
        socket.close();
        return;
      }
      String key = null;
      for (String line : request.split("\r\n")) {
        if (line.toLowerCase().startsWith("sec-websocket-key:")) {
          key = line.substring(line.indexOf(':') + 1).strip();
        }
      }
      String accept =
          Base64.getEncoder()
              .encodeToString(
                  MessageDigest.getInstance("SHA-1")
                      .digest(
                          (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                              .getBytes(StandardCharsets.US_ASCII)));
      out.write(
          ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
                  + accept
                  + "\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
      out.flush();
      Connection c = new Connection(socket, new DataInputStream(in), out);
      byte[] initiation = c.readMessage();
      ControlHandshake.Accepted accepted = handshake.accept(initiation);
      if (accepted == null) {
        socket.close();
        return;
      }
      c.writeFrame(0x82, accepted.response());
      c.channel = accepted.channel();
      connections.add(c);
    } catch (Exception e) {
      try {
        socket.close();
      } catch (IOException ignored) {
        // gone
      }
    }
  }

  private static String readHead(InputStream in) throws IOException {
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    int state = 0;
    while (state < 4) {
      int b = in.read();
      if (b < 0) {
        throw new IOException("eof");
      }
      head.write(b);
      state =
          (b == '\r' && (state == 0 || state == 2)) || (b == '\n' && (state == 1 || state == 3))
              ? state + 1
              : 0;
    }
    return head.toString(StandardCharsets.US_ASCII);
  }

  /** One node's control session, after the handshake. */
  static final class Connection {
    final Socket socket;
    final DataInputStream in;
    final OutputStream out;
    ControlChannel channel;

    Connection(Socket socket, DataInputStream in, OutputStream out) {
      this.socket = socket;
      this.in = in;
      this.out = out;
    }

    ControlMessage receive() throws Exception {
      socket.setSoTimeout(15_000);
      return ControlJson.decode(channel.open(readMessage()));
    }

    /** Sends one message, split into {@code fragments} WebSocket frames. */
    synchronized void send(ControlMessage message, int fragments) throws IOException {
      byte[] sealed = channel.seal(ControlJson.encode(message));
      int step = Math.max(1, (sealed.length + fragments - 1) / fragments);
      for (int off = 0, i = 0; off < sealed.length; off += step, i++) {
        int len = Math.min(step, sealed.length - off);
        boolean last = off + len >= sealed.length;
        int opcode = i == 0 ? 0x2 : 0x0;
        writeFrame((last ? 0x80 : 0) | opcode, Arrays.copyOfRange(sealed, off, off + len));
      }
    }

    void send(ControlMessage message) throws IOException {
      send(message, 1);
    }

    void kill() throws IOException {
      socket.close();
    }

    byte[] readMessage() throws IOException {
      ByteArrayOutputStream message = new ByteArrayOutputStream();
      while (true) {
        int b0 = in.readUnsignedByte();
        int b1 = in.readUnsignedByte();
        long len = b1 & 0x7f;
        if (len == 126) {
          len = in.readUnsignedShort();
        } else if (len == 127) {
          len = in.readLong();
        }
        byte[] mask = new byte[4];
        if ((b1 & 0x80) != 0) {
          in.readFully(mask);
        }
        byte[] payload = new byte[(int) len];
        in.readFully(payload);
        for (int i = 0; i < payload.length; i++) {
          payload[i] ^= mask[i & 3];
        }
        int opcode = b0 & 0x0f;
        if (opcode == 0x8) {
          throw new IOException("node closed");
        }
        if (opcode == 0x9 || opcode == 0xA) {
          continue;
        }
        message.writeBytes(payload);
        if ((b0 & 0x80) != 0) {
          return message.toByteArray();
        }
      }
    }

    synchronized void writeFrame(int b0, byte[] payload) throws IOException {
      ByteArrayOutputStream frame = new ByteArrayOutputStream();
      frame.write(b0);
      if (payload.length < 126) {
        frame.write(payload.length);
      } else if (payload.length < 65536) {
        frame.write(126);
        frame.write(payload.length >>> 8);
        frame.write(payload.length);
      } else {
        frame.write(127);
        for (int i = 7; i >= 0; i--) {
          frame.write((int) ((long) payload.length >>> (8 * i)));
        }
      }
      frame.writeBytes(payload);
      out.write(frame.toByteArray());
      out.flush();
    }
  }

  @Override
  public void close() throws IOException {
    listener.close();
  }
}
