package dev.trellis.dataplane.socket;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A line-oriented server on a unix socket, shared by the agent's local API and the WireGuard
 * userspace API: binds (replacing a stale socket file, refusing when a live server answers on it),
 * restricts the file's mode, accepts on one platform thread and serves each connection on a virtual
 * thread. What the lines mean is the {@link Conversation}'s business.
 *
 * <p>Threads: the accept thread owns the server channel; each conversation runs on its own virtual
 * thread and shares nothing with the others through this class.
 */
public final class UnixLineServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(UnixLineServer.class);

  /** Serves one connection; returns (or throws) to close it. */
  public interface Conversation {
    void serve(Lines in, OutputStream out) throws IOException;
  }

  /** A live server already answers on the socket. */
  public static final class InUse extends IOException {
    InUse(String message) {
      super(message);
    }
  }

  /** A connection's input, one line at a time, with a bound on line length. */
  public static final class Lines {
    private final BufferedReader in;
    private final int maxLine;

    Lines(BufferedReader in, int maxLine) {
      this.in = in;
      this.maxLine = maxLine;
    }

    /**
     * The next line without its terminator, null at the end; a line over the limit ends the
     * connection.
     */
    public String next() throws IOException {
      StringBuilder line = new StringBuilder();
      int c;
      while ((c = in.read()) >= 0) {
        if (c == '\n') {
          return stripCr(line);
        }
        if (line.length() >= maxLine && c != '\r') {
          throw new IOException("line longer than " + maxLine + " characters");
        }
        line.append((char) c);
      }
      return line.isEmpty() ? null : stripCr(line);
    }

    private static String stripCr(StringBuilder line) {
      int n = line.length();
      return n > 0 && line.charAt(n - 1) == '\r' ? line.substring(0, n - 1) : line.toString();
    }
  }

  private final Path path;
  private final ServerSocketChannel server;
  private final String name;
  private final int maxLine;
  private final Conversation conversation;
  private volatile boolean open = true;

  private UnixLineServer(
      Path path, ServerSocketChannel server, String name, int maxLine, Conversation conversation) {
    this.path = path;
    this.server = server;
    this.name = name;
    this.maxLine = maxLine;
    this.conversation = conversation;
  }

  /**
   * Binds {@code path} with file mode {@code mode} and starts accepting.
   *
   * @param name names the accept thread and log lines
   * @param inUse the message when a live server already answers on {@code path}
   */
  public static UnixLineServer start(
      Path path,
      Set<PosixFilePermission> mode,
      String name,
      int maxLine,
      String inUse,
      Conversation conversation)
      throws IOException {
    if (Files.exists(path)) {
      boolean live;
      try (SocketChannel probe = SocketChannel.open(UnixDomainSocketAddress.of(path))) {
        live = true;
      } catch (IOException stale) {
        live = false;
      }
      if (live) {
        throw new InUse(inUse);
      }
      Files.deleteIfExists(path);
    }
    ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    server.bind(UnixDomainSocketAddress.of(path));
    Files.setPosixFilePermissions(path, mode);
    UnixLineServer s = new UnixLineServer(path, server, name, maxLine, conversation);
    Thread.ofPlatform().daemon().name(name).start(s::acceptLoop);
    return s;
  }

  public Path path() {
    return path;
  }

  private void acceptLoop() {
    while (open) {
      try {
        SocketChannel client = server.accept();
        Thread.ofVirtual().start(() -> serve(client));
      } catch (IOException e) {
        if (open) {
          LOG.warn("{}: accept failed", name, e);
        }
        return;
      }
    }
  }

  private void serve(SocketChannel client) {
    try (client;
        BufferedReader in =
            new BufferedReader(
                new InputStreamReader(Channels.newInputStream(client), StandardCharsets.UTF_8));
        OutputStream out = Channels.newOutputStream(client)) {
      conversation.serve(new Lines(in, maxLine), out);
    } catch (IOException e) {
      LOG.debug("{}: client went away", name, e);
    }
  }

  /** Stops accepting and removes the socket file. */
  @Override
  public void close() {
    open = false;
    try {
      server.close();
    } catch (IOException ignored) {
      // nothing to flush
    }
    try {
      Files.deleteIfExists(path);
    } catch (IOException e) {
      LOG.warn("could not remove {}", path, e);
    }
  }
}
