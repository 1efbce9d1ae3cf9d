package dev.trellis.control.stun;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.trellis.dataplane.stun.StunClient;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.channels.DatagramChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Interoperability with real STUN peers on loopback: Debian's RFC 3489 {@code stun} client and
 * coturn's {@code turnutils_stunclient} against our server, and our client against coturn's {@code
 * turnserver}. The tools come from the Debian packages stun-client and coturn (CI installs them); a
 * missing tool fails the test, naming its package.
 */
class StunInteropTest {
  private static final Duration TOOL_TIMEOUT = Duration.ofSeconds(60);

  /** The tool's path, or a failure naming the Debian package that provides it. */
  private static String tool(String name, String debianPackage) {
    for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
      Path p = Path.of(dir.isEmpty() ? "." : dir, name);
      if (Files.isExecutable(p)) {
        return p.toString();
      }
    }
    for (String dir : List.of("/usr/bin", "/usr/sbin", "/usr/local/bin")) {
      if (Files.isExecutable(Path.of(dir, name))) {
        return Path.of(dir, name).toString();
      }
    }
    return fail(
        name
            + " is not installed: install the Debian package "
            + debianPackage
            + " (apt-get install -y "
            + debianPackage
            + ")");
  }

  /** Runs a command to completion (bounded), returning its merged stdout and stderr. */
  private static String run(List<String> command) throws Exception {
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    try {
      p.getOutputStream().close();
      byte[] out = p.getInputStream().readAllBytes(); // ends when the process exits
      if (!p.waitFor(TOOL_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
        fail(command + " did not finish within " + TOOL_TIMEOUT);
      }
      return new String(out, StandardCharsets.UTF_8);
    } finally {
      p.destroyForcibly();
    }
  }

  /** A UDP port that was free a moment ago (and, with {@code pair}, so was the next one). */
  private static int freeUdpPort(boolean pair) throws IOException {
    for (int attempt = 0; attempt < 50; attempt++) {
      try (DatagramChannel a = DatagramChannel.open(StandardProtocolFamily.INET)) {
        a.bind(new InetSocketAddress("127.0.0.1", 0));
        int port = ((InetSocketAddress) a.getLocalAddress()).getPort();
        if (!pair) {
          return port;
        }
        if (port < 65535) {
          try (DatagramChannel b = DatagramChannel.open(StandardProtocolFamily.INET)) {
            b.bind(new InetSocketAddress("127.0.0.1", port + 1));
            return port;
          } catch (IOException taken) {
            // try another
          }
        }
      }
    }
    throw new IOException("no free UDP port pair found");
  }

  /**
   * Debian's {@code stun} (the RFC 3489 client from stund 0.97) has no server-port option: it
   * always asks port 3478. It prints the mapped address only with -v ("MappedAddress = IP:PORT");
   * -p sets its source port (it also opens the port after it), so the expected mapping is known.
   */
  @Test
  void debianStunClientAgainstOurServer() throws Exception {
    String stun = tool("stun", "stun-client");
    StunServer server;
    try {
      server = StunServer.start(new InetSocketAddress("127.0.0.1", StunServer.DEFAULT_PORT));
    } catch (IOException busy) {
      System.out.println(
          "StunInteropTest: SKIPPED the Debian stun client case: UDP 127.0.0.1:3478 is taken ("
              + busy.getMessage()
              + "), and that client can only ask port 3478");
      Assumptions.abort(
          "UDP 127.0.0.1:3478 is taken; the stun client cannot use another server port");
      return;
    }
    try (server) {
      int source = freeUdpPort(true);
      String out = run(List.of(stun, "127.0.0.1", "-v", "-p", Integer.toString(source)));
      System.out.println("stun printed:\n" + out);
      assertTrue(out.contains("MappedAddress = 127.0.0.1:" + source), out);
      assertTrue(server.counters().classicBindingResponses() >= 1, server.counters().toString());
    }
  }

  @Test
  void coturnStunclientAgainstOurServer() throws Exception {
    String stunclient = tool("turnutils_stunclient", "coturn");
    BlockingQueue<InetSocketAddress> answered = new LinkedBlockingQueue<>();
    try (StunServer server =
        StunServer.start(new InetSocketAddress("127.0.0.1", 0), answered::add)) {
      String out = run(List.of(stunclient, "-p", Integer.toString(server.port()), "127.0.0.1"));
      System.out.println("turnutils_stunclient printed:\n" + out);
      Matcher m = Pattern.compile("UDP reflexive addr: 127\\.0\\.0\\.1:(\\d+)").matcher(out);
      assertTrue(m.find(), out);
      int port = Integer.parseInt(m.group(1));
      // The server tells its listener after sending the answer: the client may have printed it
      // first.
      InetSocketAddress first = answered.poll(5, TimeUnit.SECONDS);
      assertNotNull(first, "server answered nobody");
      assertEquals(new InetSocketAddress("127.0.0.1", port), first);
      assertEquals(0, server.counters().errorResponses(), server.counters().toString());
    }
  }

  @Test
  void ourClientAgainstCoturnServer(@TempDir Path dir) throws Exception {
    String turnserver = tool("turnserver", "coturn");
    int port = freeUdpPort(false);
    Path log = dir.resolve("turnserver.log");
    Process p =
        new ProcessBuilder(
                turnserver,
                "--stun-only",
                "--listening-ip",
                "127.0.0.1",
                "--listening-port",
                Integer.toString(port),
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--no-auth",
                "--simple-log",
                "--log-file",
                "stdout",
                "--pidfile",
                dir.resolve("turnserver.pid").toString(),
                "--userdb",
                dir.resolve("turndb").toString())
            .redirectErrorStream(true)
            .redirectOutput(log.toFile())
            .start();
    try {
      try (DatagramChannel channel = DatagramChannel.open(StandardProtocolFamily.INET)) {
        channel.bind(new InetSocketAddress("127.0.0.1", 0));
        // The server may still be starting: the client's retransmissions cover that.
        InetSocketAddress mapped;
        try {
          mapped =
              StunClient.bindingRequest(
                  channel, new InetSocketAddress("127.0.0.1", port), Duration.ofSeconds(15));
        } catch (IOException e) {
          throw new AssertionError(
              "no answer from turnserver (alive: "
                  + p.isAlive()
                  + "), its log:\n"
                  + Files.readString(log),
              e);
        }
        assertEquals(channel.getLocalAddress(), mapped);
      }
    } finally {
      p.destroy();
      if (!p.waitFor(5, TimeUnit.SECONDS)) {
        p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    }
  }
}
