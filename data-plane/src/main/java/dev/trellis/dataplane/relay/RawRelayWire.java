package dev.trellis.dataplane.relay;

import dev.trellis.proto.relay.RelayFrame;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.concurrent.locks.LockSupport;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

/**
 * The relay over a raw upgraded HTTP/1.1 connection ({@code Upgrade: trellis-relay}, framing in
 * {@link RelayFrame}): one platform thread reads and hands each frame to the client as it arrives;
 * one writes, draining the client's queues into a single buffer per wake-up so a burst of packets
 * costs one write. Both use blocking socket I/O: no selector or executor hand-offs on the way.
 */
final class RawRelayWire implements RelayClient.Wire {
  /** What one write may gather. */
  private static final int WRITE_BATCH = 64 * 1024;

  private static final int READ_BUFFER = 64 * 1024;
  private static final int MAX_RESPONSE_HEAD = 16 * 1024;

  /**
   * The server answered the upgrade with something else than 101: it (or a proxy) does not speak
   * the raw transport.
   */
  static final class UpgradeRefused extends IOException {
    UpgradeRefused(String message) {
      super(message);
    }
  }

  private final RelayClient client;
  private final Socket socket;
  private final InputStream in;
  private final OutputStream out;
  private volatile Thread writer;

  private RawRelayWire(RelayClient client, Socket socket, InputStream in, OutputStream out) {
    this.client = client;
    this.socket = socket;
    this.in = in;
    this.out = out;
  }

  @Override
  public String name() {
    return "raw";
  }

  /**
   * Connects, sends the upgrade request and reads the answer; blocks (call it off the caller's
   * thread).
   */
  static RawRelayWire open(HttpClient http, URI relayUri, RelayClient client) throws IOException {
    boolean tls = relayUri.getScheme().equals("wss");
    String host = relayUri.getHost();
    int port = relayUri.getPort() != -1 ? relayUri.getPort() : tls ? 443 : 80;
    Socket plain = new Socket();
    try {
      plain.setTcpNoDelay(true);
      plain.connect(
          new InetSocketAddress(host, port), (int) RelayClient.CONNECT_TIMEOUT.toMillis());
      Socket socket = plain;
      if (tls) {
        SSLSocket ssl =
            (SSLSocket) http.sslContext().getSocketFactory().createSocket(plain, host, port, true);
        SSLParameters params = http.sslParameters();
        params.setEndpointIdentificationAlgorithm("HTTPS");
        ssl.setSSLParameters(params);
        ssl.startHandshake();
        socket = ssl;
      }
      socket.setSoTimeout((int) RelayClient.HANDSHAKE_TIMEOUT.toMillis());
      OutputStream out = socket.getOutputStream();
      String path =
          relayUri.getRawPath() == null || relayUri.getRawPath().isEmpty()
              ? "/"
              : relayUri.getRawPath();
      String hostHeader = relayUri.getPort() == -1 ? host : host + ":" + port;
      out.write(
          ("GET "
                  + path
                  + " HTTP/1.1\r\nHost: "
                  + hostHeader
                  + "\r\nConnection: Upgrade\r\nUpgrade: "
                  + RelayFrame.RAW_UPGRADE
                  + "\r\nUser-Agent: trellis\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
      out.flush();
      InputStream in = new BufferedInputStream(socket.getInputStream(), READ_BUFFER);
      String status = readHead(in);
      String[] parts = status.split(" ", 3);
      if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
        throw new IOException("relay answered the upgrade with '" + status + "'");
      }
      if (!parts[1].equals("101")) {
        throw new UpgradeRefused("relay answered the raw upgrade with HTTP " + parts[1]);
      }
      socket.setSoTimeout(0);
      return new RawRelayWire(client, socket, in, out);
    } catch (IOException | RuntimeException e) {
      plain.close();
      throw e;
    }
  }

  /** The status line; the header lines are read and ignored up to the blank line. */
  private static String readHead(InputStream in) throws IOException {
    StringBuilder line = new StringBuilder();
    String status = null;
    int total = 0;
    while (true) {
      int c = in.read();
      if (c < 0) {
        throw new EOFException("relay closed the connection during the upgrade");
      }
      if (++total > MAX_RESPONSE_HEAD) {
        throw new IOException(
            "relay's upgrade response is longer than " + MAX_RESPONSE_HEAD + " bytes");
      }
      if (c == '\n') {
        String l = line.toString().strip();
        line.setLength(0);
        if (status == null) {
          status = l;
        } else if (l.isEmpty()) {
          return status;
        }
      } else {
        line.append((char) c);
      }
    }
  }

  void start() {
    String label = socket.getRemoteSocketAddress().toString().toLowerCase(Locale.ROOT);
    Thread.ofPlatform().daemon().name("relay-read " + label).start(this::readLoop);
    writer = Thread.ofPlatform().daemon().name("relay-write " + label).start(this::writeLoop);
  }

  private void readLoop() {
    DataInputStream data = new DataInputStream(in);
    byte[] buffer = new byte[2048];
    try {
      while (!client.isClosed()) {
        int length = data.readInt();
        if (length < 1 || length > RelayFrame.MAX_FRAME) {
          client.fail("bad frame length " + length + " from the relay");
          return;
        }
        if (length > buffer.length) {
          buffer = new byte[Math.max(length, Math.min(buffer.length * 2, RelayFrame.MAX_FRAME))];
        }
        data.readFully(buffer, 0, length);
        client.onFrame(buffer, length);
      }
    } catch (EOFException e) {
      client.onRemoteClose("");
    } catch (IOException e) {
      if (!client.isClosed()) {
        client.onError(e);
      }
    } finally {
      closeSocket();
    }
  }

  private void writeLoop() {
    byte[] batch = new byte[WRITE_BATCH];
    try {
      while (!client.isClosed()) {
        int used = 0;
        ByteBuffer frame;
        while (used < WRITE_BATCH - RelayFrame.RAW_LENGTH_FIELD
            && (frame = client.nextFrame()) != null) {
          int n = frame.remaining();
          if (used + RelayFrame.RAW_LENGTH_FIELD + n > batch.length) {
            out.write(batch, 0, used);
            used = 0;
            if (RelayFrame.RAW_LENGTH_FIELD + n > batch.length) {
              batch = new byte[RelayFrame.RAW_LENGTH_FIELD + n];
            }
          }
          batch[used] = (byte) (n >>> 24);
          batch[used + 1] = (byte) (n >>> 16);
          batch[used + 2] = (byte) (n >>> 8);
          batch[used + 3] = (byte) n;
          frame.get(frame.position(), batch, used + RelayFrame.RAW_LENGTH_FIELD, n);
          used += RelayFrame.RAW_LENGTH_FIELD + n;
          client.written(frame, true);
        }
        if (used > 0) {
          out.write(batch, 0, used);
        } else {
          // Woken by wake(); the permit makes a wake between the poll and here return at once.
          LockSupport.parkNanos(this, 1_000_000_000L);
        }
      }
    } catch (IOException e) {
      if (!client.isClosed()) {
        client.fail("send failed: " + e.getMessage());
      }
    } finally {
      closeSocket();
    }
  }

  @Override
  public void wake() {
    Thread w = writer;
    if (w != null) {
      LockSupport.unpark(w);
    }
  }

  @Override
  public void abort() {
    closeSocket();
  }

  /** The relay needs no goodbye on the raw transport: closing the socket is the close. */
  @Override
  public void close() {
    closeSocket();
  }

  private void closeSocket() {
    try {
      socket.close();
    } catch (IOException ignored) {
      // already closed
    }
    wake();
  }
}
