package dev.trellis.dataplane.uapi;

import dev.trellis.dataplane.socket.UnixLineServer;
import dev.trellis.dataplane.wireguard.Device;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves {@link UapiProtocol} on /var/run/wireguard/NAME.sock, where `wg` looks for userspace
 * interfaces (through {@link UnixLineServer}); a connection may carry several requests.
 */
public final class UapiServer implements AutoCloseable {
  public static final Path SOCKET_DIRECTORY = Path.of("/var/run/wireguard");

  /** Longest request line we accept; a longer one is malformed. */
  private static final int MAX_LINE = 4096;

  private static final Logger LOG = LoggerFactory.getLogger(UapiServer.class);

  private final Device device;
  private final UnixLineServer server;

  private UapiServer(Device device, String interfaceName) throws IOException {
    this.device = device;
    Files.createDirectories(SOCKET_DIRECTORY);
    Path path = socketPath(interfaceName);
    this.server =
        UnixLineServer.start(
            path,
            PosixFilePermissions.fromString("rw-------"),
            "uapi-" + interfaceName,
            MAX_LINE,
            "another daemon already serves " + path,
            this::converse);
  }

  public static Path socketPath(String interfaceName) {
    return SOCKET_DIRECTORY.resolve(interfaceName + ".sock");
  }

  /**
   * Binds the socket; fails ({@link UnixLineServer.InUse}) if a live daemon already serves this
   * interface name.
   */
  public static UapiServer start(Device device, String interfaceName) throws IOException {
    return new UapiServer(device, interfaceName);
  }

  public Path path() {
    return server.path();
  }

  /**
   * {@code get=1} or {@code set=1} with its body up to a blank line; anything else ends the
   * connection.
   */
  private void converse(UnixLineServer.Lines in, OutputStream out) throws IOException {
    String line;
    while ((line = in.next()) != null) {
      String reply;
      if (line.equals("get=1")) {
        reply =
            readUntilBlank(in).isEmpty()
                ? UapiProtocol.get(device) + "errno=0\n\n"
                : "errno=-" + UapiProtocol.EINVAL + "\n\n";
      } else if (line.equals("set=1")) {
        reply = applySet(readUntilBlank(in));
      } else {
        out.write(("errno=-" + UapiProtocol.EINVAL + "\n\n").getBytes(StandardCharsets.UTF_8));
        return;
      }
      out.write(reply.getBytes(StandardCharsets.UTF_8));
      out.flush();
    }
  }

  private String applySet(List<String> body) {
    try {
      UapiProtocol.set(device, body);
      return "errno=0\n\n";
    } catch (UapiProtocol.UapiException e) {
      LOG.warn("uapi set refused: " + e.getMessage());
      return "errno=-" + e.errno() + "\n\n";
    } catch (RuntimeException e) {
      LOG.warn("uapi set failed", e);
      return "errno=-" + UapiProtocol.EIO + "\n\n";
    }
  }

  private static List<String> readUntilBlank(UnixLineServer.Lines in) throws IOException {
    List<String> lines = new ArrayList<>();
    String line;
    while ((line = in.next()) != null && !line.isEmpty()) {
      lines.add(line);
    }
    return lines;
  }

  @Override
  public void close() {
    server.close();
  }
}
