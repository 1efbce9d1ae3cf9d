package dev.trellis.dataplane.metrics;

import io.prometheus.metrics.exporter.httpserver.HTTPServer;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.OptionalDouble;
import java.util.concurrent.Executors;

/**
 * Serves one registry's metrics in Prometheus' text format at {@code GET /metrics} on an address of
 * its own, apart from the server's HTTP port and the agent's local API: what a scraper sees is
 * chosen by this listener's address (loopback by default), not by the API's authentication.
 * Prometheus' own HTTP server does the serving; the collection runs on its threads at each scrape.
 *
 * <p>Threads: the listener's; {@link #close()} from the owner.
 */
public final class MetricsEndpoint implements AutoCloseable {
  private final HTTPServer server;

  private MetricsEndpoint(HTTPServer server) {
    this.server = server;
  }

  /**
   * Listens on {@code listen} ("HOST:PORT", "[V6]:PORT"; port 0 takes a free one). A port in use or
   * an address this host lacks is an error that names the address and {@code setting}.
   */
  public static MetricsEndpoint start(PrometheusRegistry registry, String listen, String setting)
      throws IOException {
    InetSocketAddress address = parse(listen, setting);
    try {
      HTTPServer server =
          HTTPServer.builder()
              .inetAddress(InetAddress.getByName(address.getHostString()))
              .port(address.getPort())
              .registry(registry)
              // Scrapes come seconds apart: one thread answers them, not the library's pool.
              .executorService(
                  Executors.newSingleThreadExecutor(
                      Thread.ofPlatform().daemon().name("trellis-metrics").factory()))
              .buildAndStart();
      return new MetricsEndpoint(server);
    } catch (IOException e) {
      throw new ListenFailure(
          "cannot serve metrics on "
              + listen
              + " ("
              + e.getMessage()
              + "); change "
              + setting
              + " (empty turns the metrics listener off)",
          e);
    }
  }

  /** The listener could not be opened; the message names the address and the setting. */
  public static final class ListenFailure extends IOException {
    ListenFailure(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /** "HOST:PORT" or "[V6]:PORT" as an unresolved address; anything else names {@code setting}. */
  public static InetSocketAddress parse(String listen, String setting) {
    int colon = listen.lastIndexOf(':');
    String host = colon < 0 ? "" : listen.substring(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    int port = -1;
    if (colon >= 0) {
      try {
        port = Integer.parseInt(listen.substring(colon + 1));
      } catch (NumberFormatException e) {
        port = -1;
      }
    }
    if (host.isEmpty() || port < 0 || port > 65535) {
      throw new IllegalArgumentException(
          setting + " must be HOST:PORT (e.g. 127.0.0.1:9090), not '" + listen + "'");
    }
    return InetSocketAddress.createUnresolved(host, port);
  }

  /** The port it listens on (the one picked, for port 0). */
  public int port() {
    return server.getPort();
  }

  /** The registry's metrics as Prometheus text, as a scrape of {@code /metrics} returns them. */
  public static String text(PrometheusRegistry registry) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      PrometheusTextFormatWriter.create().write(out, registry.scrape());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toString(StandardCharsets.UTF_8);
  }

  /**
   * The value of one sample in a text exposition, {@code series} written as exposed (name and
   * labels, labels sorted as the writer sorts them), if present. For readers of {@link #text}.
   */
  public static OptionalDouble sample(String exposition, String series) {
    return exposition
        .lines()
        .filter(l -> l.startsWith(series + " "))
        .mapToDouble(
            l -> Double.parseDouble(l.substring(series.length() + 1).strip().split(" ")[0]))
        .findFirst();
  }

  @Override
  public void close() {
    server.close();
  }
}
