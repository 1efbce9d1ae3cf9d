package dev.trellis.control.server;

import dev.trellis.control.stun.StunServer;
import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.http.javadsl.ConnectionContext;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.ServerBuilder;
import org.apache.pekko.http.javadsl.server.Route;

/**
 * The ports a Trellis server process serves on, for {@code trellis server} ({@link TrellisServer})
 * and {@code trellis relay} ({@code StandaloneRelay}) alike: the STUN server on UDP (optional) and
 * Pekko HTTP on TCP, HTTPS when given a keystore ({@link ServerTls}). STUN opens first ({@link
 * #open}), before the actor system, so a taken UDP port fails start-up at once; HTTP binds once the
 * routes exist ({@link #bind}). {@link #close()} closes both; {@link #startFailure} words what went
 * wrong the way both commands print it.
 *
 * <p>Threads: opened and bound by the thread starting the process; {@link #close()} may come from
 * another (a shutdown hook), hence the volatile binding. The STUN server answers on its own thread,
 * the HTTP connections run on the actor system's dispatchers.
 */
public final class ListeningPorts implements AutoCloseable {
  static final Duration BIND_TIMEOUT = Duration.ofSeconds(30);

  /**
   * On close, open connections get this long to send what is queued (the relay's restart notices).
   */
  static final Duration DRAIN = Duration.ofSeconds(1);

  private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(5);

  /** Where to serve HTTP; {@code tlsKeystore} null: plain HTTP. */
  public record HttpPort(String host, int port, Path tlsKeystore, String tlsKeystorePassword) {
    public static HttpPort plain(String host, int port) {
      return new HttpPort(host, port, null, null);
    }
  }

  private final StunServer stun; // null: no STUN
  private volatile ServerBinding binding; // null until bound

  private ListeningPorts(StunServer stun) {
    this.stun = stun;
  }

  /** Starts STUN on {@code stun} (null: none); HTTP comes with {@link #bind}. */
  public static ListeningPorts open(InetSocketAddress stun) throws IOException {
    return new ListeningPorts(stun == null ? null : StunServer.start(stun));
  }

  /**
   * Binds {@code routes} at {@code http} (port 0 picks a free one). A bind that fails (the port is
   * taken, the address is not this host's) throws with the reason Pekko HTTP gave.
   */
  public ListeningPorts bind(ActorSystem<?> system, Route routes, HttpPort http) throws Exception {
    if (binding != null) {
      throw new IllegalStateException("already bound to " + binding.localAddress());
    }
    ServerBuilder builder = Http.get(system).newServerAt(http.host(), http.port());
    if (http.tlsKeystore() != null) {
      builder =
          builder.enableHttps(
              ConnectionContext.httpsServer(
                  ServerTls.sslContext(http.tlsKeystore(), http.tlsKeystorePassword())));
    }
    try {
      binding =
          builder
              .bind(routes)
              .toCompletableFuture()
              .get(BIND_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      Throwable cause = e.getCause() == null ? e : e.getCause();
      throw new IOException(cause.getMessage(), cause);
    }
    return this;
  }

  /** The bound HTTP port. */
  public int port() {
    return binding.localAddress().getPort();
  }

  /** The STUN server's UDP port, or -1 without one. */
  /** What the STUN server has answered so far (call only when {@link #stunPort()} is not -1). */
  public StunServer.Counters stunCounters() {
    return stun.counters();
  }

  public int stunPort() {
    return stun == null ? -1 : stun.port();
  }

  /**
   * What {@code trellis server} and {@code trellis relay} print when they cannot start: what,
   * where, and the reason (an IOException's own message, else the cause's).
   */
  public static IOException startFailure(String what, String host, int port, Exception e) {
    String reason =
        e instanceof IOException || e.getCause() == null
            ? e.getMessage()
            : e.getCause().getMessage();
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof BindException
          || String.valueOf(t.getMessage()).contains("Address already in use")) {
        reason = "the port is already in use (another trellis server?); choose another --listen";
        break;
      }
    }
    return new IOException(
        "cannot start the " + what + " on " + host + ":" + port + ": " + reason, e);
  }

  /**
   * Stops STUN, then HTTP gracefully: no new connections, open ones get {@link #DRAIN} to send what
   * is queued. The actor system is its owner's to terminate.
   */
  @Override
  public void close() {
    if (stun != null) {
      stun.close();
    }
    ServerBinding b = binding;
    if (b != null) {
      b.terminate(DRAIN)
          .toCompletableFuture()
          .orTimeout(CLOSE_TIMEOUT.toSeconds(), TimeUnit.SECONDS)
          .exceptionally(e -> null)
          .join();
    }
  }
}
