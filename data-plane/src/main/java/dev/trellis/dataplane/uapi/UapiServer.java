package dev.trellis.dataplane.uapi;

import dev.trellis.dataplane.wireguard.Device;
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
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves {@link UapiProtocol} on /var/run/wireguard/NAME.sock, where `wg` looks for userspace
 * interfaces. One virtual thread per connection; a connection may carry several requests.
 */
public final class UapiServer implements AutoCloseable {
    public static final Path SOCKET_DIRECTORY = Path.of("/var/run/wireguard");
    /** Longest request line we accept; a longer one is malformed. */
    private static final int MAX_LINE = 4096;
    private static final Logger LOG = LoggerFactory.getLogger(UapiServer.class);

    private final Device device;
    private final Path socketPath;
    private final ServerSocketChannel server;
    private volatile boolean open = true;

    private UapiServer(Device device, Path socketPath, ServerSocketChannel server) {
        this.device = device;
        this.socketPath = socketPath;
        this.server = server;
    }

    public static Path socketPath(String interfaceName) {
        return SOCKET_DIRECTORY.resolve(interfaceName + ".sock");
    }

    /** Binds the socket; fails if a live daemon already serves this interface name. */
    public static UapiServer start(Device device, String interfaceName) throws IOException {
        Files.createDirectories(SOCKET_DIRECTORY);
        Path path = socketPath(interfaceName);
        if (Files.exists(path)) {
            try (SocketChannel probe = SocketChannel.open(UnixDomainSocketAddress.of(path))) {
                throw new IOException("another daemon already serves " + path);
            } catch (IOException stale) {
                if (stale.getMessage() != null && stale.getMessage().startsWith("another daemon")) {
                    throw stale;
                }
                Files.deleteIfExists(path);
            }
        }
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(path));
        Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-------"));
        UapiServer uapi = new UapiServer(device, path, server);
        Thread.ofPlatform().daemon().name("uapi-" + interfaceName).start(uapi::acceptLoop);
        return uapi;
    }

    public Path path() {
        return socketPath;
    }

    private void acceptLoop() {
        while (open) {
            try {
                SocketChannel client = server.accept();
                Thread.ofVirtual().start(() -> serve(client));
            } catch (IOException e) {
                if (open) {
                    LOG.warn("uapi accept failed", e);
                }
                return;
            }
        }
    }

    private void serve(SocketChannel client) {
        try (client;
             BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(client), StandardCharsets.UTF_8));
             OutputStream out = Channels.newOutputStream(client)) {
            String line;
            while ((line = readLine(in)) != null) {
                String reply;
                if (line.equals("get=1")) {
                    if (!readUntilBlank(in).isEmpty()) {
                        reply = "errno=-" + UapiProtocol.EINVAL + "\n\n";
                    } else {
                        reply = UapiProtocol.get(device) + "errno=0\n\n";
                    }
                } else if (line.equals("set=1")) {
                    List<String> body = readUntilBlank(in);
                    reply = applySet(body);
                } else {
                    reply = "errno=-" + UapiProtocol.EINVAL + "\n\n";
                    out.write(reply.getBytes(StandardCharsets.UTF_8));
                    return;
                }
                out.write(reply.getBytes(StandardCharsets.UTF_8));
                out.flush();
            }
        } catch (IOException e) {
            LOG.debug("uapi client went away", e);
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

    private static List<String> readUntilBlank(BufferedReader in) throws IOException {
        List<String> lines = new ArrayList<>();
        String line;
        while ((line = readLine(in)) != null && !line.isEmpty()) {
            lines.add(line);
        }
        return lines;
    }

    private static String readLine(BufferedReader in) throws IOException {
        String line = in.readLine();
        if (line != null && line.length() > MAX_LINE) {
            throw new IOException("uapi line longer than " + MAX_LINE);
        }
        return line;
    }

    @Override
    public void close() {
        open = false;
        try {
            server.close();
        } catch (IOException ignored) {
            // nothing to flush
        }
        try {
            Files.deleteIfExists(socketPath);
        } catch (IOException e) {
            LOG.warn("could not remove " + socketPath, e);
        }
    }
}
