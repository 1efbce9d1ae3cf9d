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
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

/**
 * The relay over a raw upgraded HTTP/1.1 connection ({@code Upgrade: trellis-relay}, framing in
 * {@link RelayFrame}).
 *
 * <p>Plain TCP (the usual case): the socket is a non-blocking channel. A lone packet is written by
 * the thread that sends it when nothing else is being written ({@link #wake}): an idle round trip
 * then costs no thread hand-off (waking the writer thread was a good part of it). Whoever writes
 * drains every queued frame into one buffer, so a burst costs one write. When the socket cannot
 * take everything (the relay or the network is slower than the senders), the rest waits in that
 * buffer and the writer thread takes over: it owns the write side until the socket has drained and
 * the queues are empty, and senders only queue — batching under load, no delay when idle. One
 * platform thread reads (waiting in a selector) and hands each frame to the client as it arrives.
 *
 * <p>TLS ({@code wss}): blocking socket streams, one reader thread and one writer thread that the
 * senders wake.
 *
 * <p>Threads: {@link #out}, {@code lastDestination} in the client and the write side of the channel
 * belong to whoever holds {@link #writing} (a sender inside {@link #wake} or the writer thread);
 * the read buffers to the reader thread.
 */
final class RawRelayWire implements RelayClient.Wire {
  /** What one write may gather. */
  private static final int WRITE_BATCH = 64 * 1024;

  private static final int READ_BUFFER = 64 * 1024;
  private static final int MAX_RESPONSE_HEAD = 16 * 1024;

  /** How many batches a sender writes on its own thread before it leaves the rest to the writer. */
  private static final int INLINE_BATCHES = 2;

  /**
   * A sender writes on its own thread only when the previous packet was queued at least this long
   * ago: an isolated packet (a ping, an ACK after a pause, a keepalive) skips the wake-up of the
   * writer thread, while a stream of packets keeps the writer thread writing in batches next to the
   * senders (on this data path a write costs about as much as sealing the packet, so the two run in
   * parallel on two cores).
   */
  private static final long INLINE_GAP_NANOS = 50_000;

  /**
   * The server answered the upgrade with something else than 101: it (or a proxy) does not speak
   * the raw transport.
   */
  static final class UpgradeRefused extends IOException {
    UpgradeRefused(String message) {
      super(message);
    }
  }

  private enum Flush {
    /** Everything queued went out. */
    EMPTY,
    /** The socket took less than was there: the rest waits in {@link #out}. */
    BLOCKED,
    /** The inline sender did its share; frames are still queued. */
    MORE
  }

  private final RelayClient client;
  private final Socket socket;

  /** Plain TCP: the non-blocking channel; null with TLS. */
  private final SocketChannel channel;

  /** TLS only. */
  private final InputStream in;

  private final OutputStream out0;

  /** Bytes read past the upgrade response: the first frames. */
  private final byte[] early;

  private final Selector readSelector;
  private final Selector writeSelector;

  /** Held by whoever is writing: a sender in {@link #wake} or the writer thread. */
  private final AtomicBoolean writing = new AtomicBoolean();

  /** The batch being written (plain TCP), flipped for reading while it holds unwritten bytes. */
  private ByteBuffer out = ByteBuffer.allocateDirect(WRITE_BATCH + RelayFrame.MAX_FRAME + 8);

  private volatile Thread writer;

  /** When {@link #wake} was last called; racy on purpose (a hint, not state). */
  private volatile long lastWakeNanos;

  private RawRelayWire(
      RelayClient client,
      Socket socket,
      SocketChannel channel,
      InputStream in,
      OutputStream out,
      byte[] early)
      throws IOException {
    this.client = client;
    this.socket = socket;
    this.channel = channel;
    this.in = in;
    this.out0 = out;
    this.early = early;
    this.out.flip(); // nothing pending
    if (channel != null) {
      channel.configureBlocking(false);
      readSelector = Selector.open();
      writeSelector = Selector.open();
      channel.register(readSelector, SelectionKey.OP_READ);
      channel.register(writeSelector, SelectionKey.OP_WRITE);
    } else {
      readSelector = null;
      writeSelector = null;
    }
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
    SocketChannel ch = tls ? null : SocketChannel.open();
    Socket plain = ch != null ? ch.socket() : new Socket();
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
      // Buffered for the byte-wise head; what it read past the head is the first frames.
      BufferedInputStream in = new BufferedInputStream(socket.getInputStream(), READ_BUFFER);
      String status = readHead(in);
      String[] parts = status.split(" ", 3);
      if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
        throw new IOException("relay answered the upgrade with '" + status + "'");
      }
      if (!parts[1].equals("101")) {
        throw new UpgradeRefused("relay answered the raw upgrade with HTTP " + parts[1]);
      }
      socket.setSoTimeout(0);
      if (ch == null) {
        return new RawRelayWire(client, socket, null, in, out, new byte[0]);
      }
      // Only what the buffer already holds: available() of a BufferedInputStream over a socket
      // may add what the socket has, which read then takes without blocking either.
      byte[] early = in.readNBytes(in.available());
      return new RawRelayWire(client, socket, ch, null, null, early);
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
    boolean plain = channel != null;
    Thread.ofPlatform()
        .daemon()
        .name("relay-read " + label)
        .start(plain ? this::readLoop : this::blockingReadLoop);
    writer =
        Thread.ofPlatform()
            .daemon()
            .name("relay-write " + label)
            .start(plain ? this::writeLoop : this::blockingWriteLoop);
    if (plain && client.hasFrames()) {
      wake();
    }
  }

  // ---- plain TCP ------------------------------------------------------------------------------

  private void readLoop() {
    ByteBuffer buffer = ByteBuffer.allocateDirect(READ_BUFFER);
    byte[] frame = new byte[2048];
    buffer.put(early);
    try {
      while (!client.isClosed()) {
        buffer.flip();
        while (buffer.remaining() >= RelayFrame.RAW_LENGTH_FIELD) {
          int length = buffer.getInt(buffer.position());
          if (length < 1 || length > RelayFrame.MAX_FRAME) {
            client.fail("bad frame length " + length + " from the relay");
            return;
          }
          if (buffer.remaining() < RelayFrame.RAW_LENGTH_FIELD + length) {
            if (RelayFrame.RAW_LENGTH_FIELD + length > buffer.capacity()) {
              buffer = ByteBuffer.allocateDirect(RelayFrame.MAX_FRAME + 8).put(buffer).flip();
            }
            break;
          }
          if (length > frame.length) {
            frame = new byte[Math.max(length, Math.min(frame.length * 2, RelayFrame.MAX_FRAME))];
          }
          buffer.get(buffer.position() + RelayFrame.RAW_LENGTH_FIELD, frame, 0, length);
          buffer.position(buffer.position() + RelayFrame.RAW_LENGTH_FIELD + length);
          client.onFrame(frame, length);
          if (client.isClosed()) {
            return;
          }
        }
        buffer.compact();
        int n = channel.read(buffer);
        if (n < 0) {
          client.onRemoteClose("");
          return;
        }
        if (n == 0) {
          readSelector.select();
          readSelector.selectedKeys().clear();
        }
      }
    } catch (IOException | ClosedSelectorException e) {
      if (!client.isClosed()) {
        client.onError(e instanceof IOException io ? io : new IOException("relay socket closed"));
      }
    } finally {
      closeSocket();
    }
  }

  /**
   * Takes over what senders could not write: waits until the socket takes the rest of the batch,
   * drains the queues, and gives the write side back when both are empty.
   */
  private void writeLoop() {
    try {
      while (!client.isClosed()) {
        if (writing.compareAndSet(false, true)) {
          Flush result;
          try {
            result = flush(Integer.MAX_VALUE);
            while (result == Flush.BLOCKED && !client.isClosed()) {
              writeSelector.select(1000);
              writeSelector.selectedKeys().clear();
              result = flush(Integer.MAX_VALUE);
            }
          } finally {
            writing.set(false);
          }
          if (client.hasFrames()) {
            continue; // queued while we held the write side, by a sender that saw it held
          }
        }
        // Woken by wake(); the permit makes a wake between the check and here return at once.
        LockSupport.parkNanos(this, 1_000_000_000L);
      }
    } catch (IOException | ClosedSelectorException e) {
      if (!client.isClosed()) {
        client.fail("send failed: " + e.getMessage());
      }
    } finally {
      closeSocket();
    }
  }

  /**
   * Writes what is left of the current batch, then gathers and writes new batches, up to {@code
   * batches} of them. Only the holder of {@link #writing} calls this.
   */
  private Flush flush(int batches) throws IOException {
    if (out.hasRemaining()) {
      channel.write(out);
      if (out.hasRemaining()) {
        return Flush.BLOCKED;
      }
    }
    for (int b = 0; b < batches; b++) {
      out.clear();
      ByteBuffer frame;
      while (out.position() < WRITE_BATCH && (frame = client.nextFrame()) != null) {
        if (RelayFrame.RAW_LENGTH_FIELD + frame.remaining() > out.remaining()) {
          // Only a frame larger than any the relay takes (tests send one) gets here.
          out =
              ByteBuffer.allocateDirect(
                      out.position() + RelayFrame.RAW_LENGTH_FIELD + frame.remaining())
                  .put(out.flip());
        }
        out.putInt(frame.remaining()).put(frame.duplicate());
        client.written(frame, true);
      }
      out.flip();
      if (!out.hasRemaining()) {
        return Flush.EMPTY;
      }
      channel.write(out);
      if (out.hasRemaining()) {
        return Flush.BLOCKED;
      }
    }
    return client.hasFrames() ? Flush.MORE : Flush.EMPTY;
  }

  /**
   * Something was queued. Plain TCP: a lone packet (see {@link #INLINE_GAP_NANOS}) is written by
   * the caller if nobody is writing (a non-blocking write; what the socket does not take goes to
   * the writer thread), and if someone is, the holder sees it before letting go; a packet in a
   * stream wakes the writer thread. TLS: wakes the writer thread.
   */
  @Override
  public void wake() {
    if (channel == null || client.isClosed()) {
      unparkWriter();
      return;
    }
    long now = System.nanoTime();
    long gap = now - lastWakeNanos;
    lastWakeNanos = now;
    if (gap < INLINE_GAP_NANOS) {
      unparkWriter(); // part of a stream: the writer thread batches it
      return;
    }
    if (!writing.compareAndSet(false, true)) {
      return; // the holder checks the queues after letting go
    }
    Flush result = Flush.EMPTY;
    try {
      result = flush(INLINE_BATCHES);
    } catch (IOException e) {
      client.fail("send failed: " + e.getMessage());
    } finally {
      writing.set(false);
    }
    if (result != Flush.EMPTY || client.hasFrames()) {
      unparkWriter();
    }
  }

  private void unparkWriter() {
    Thread w = writer;
    if (w != null) {
      LockSupport.unpark(w);
    }
  }

  // ---- TLS ------------------------------------------------------------------------------------

  private void blockingReadLoop() {
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

  private void blockingWriteLoop() {
    byte[] batch = new byte[WRITE_BATCH];
    try {
      while (!client.isClosed()) {
        int used = 0;
        ByteBuffer frame;
        while (used < WRITE_BATCH - RelayFrame.RAW_LENGTH_FIELD
            && (frame = client.nextFrame()) != null) {
          int n = frame.remaining();
          if (used + RelayFrame.RAW_LENGTH_FIELD + n > batch.length) {
            out0.write(batch, 0, used);
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
          out0.write(batch, 0, used);
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

  // ---- both -----------------------------------------------------------------------------------

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
    if (channel != null) {
      try {
        readSelector.close();
        writeSelector.close();
      } catch (IOException ignored) {
        // nothing more to release
      }
    }
    unparkWriter();
  }
}
