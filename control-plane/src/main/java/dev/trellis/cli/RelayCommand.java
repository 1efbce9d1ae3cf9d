package dev.trellis.cli;

import dev.trellis.control.relay.StandaloneRelay;
import dev.trellis.dataplane.metrics.MetricsEndpoint;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** `trellis relay`: a relay on its own, admitting the nodes the coordination server knows. */
@Command(
    name = "relay",
    mixinStandardHelpOptions = true,
    description = {
      "Run a relay on its own (foreground), e.g. one per building. It admits the node keys the "
          + "coordination server says are live; list it in the server's trellis.relay.others so nodes see it in their relay map."
    })
final class RelayCommand implements Callable<Integer> {
  @Option(
      names = "--listen",
      paramLabel = "HOST:PORT",
      defaultValue = "0.0.0.0:8080",
      description = "HTTP listen address (default ${DEFAULT-VALUE}).")
  String listen;

  @Option(
      names = "--region",
      required = true,
      paramLabel = "NAME",
      description = "Region (building) this relay stands for.")
  String region;

  @Option(
      names = "--login-server",
      required = true,
      paramLabel = "URL",
      description = "The coordination server's URL.")
  URI loginServer;

  @Option(
      names = "--api-key-file",
      required = true,
      paramLabel = "FILE",
      description =
          "File holding an admin API key of the coordination server (trellis apikeys create); keep it 0600.")
  Path apiKeyFile;

  @Option(
      names = "--data-dir",
      paramLabel = "DIR",
      defaultValue = "./trellis-relay-data",
      description = "Where the relay keeps its key (default ${DEFAULT-VALUE}).")
  Path dataDir;

  @Option(
      names = "--stun-port",
      paramLabel = "PORT",
      defaultValue = "3478",
      description = "UDP port for STUN; 0 for none (default ${DEFAULT-VALUE}).")
  int stunPort;

  @Option(
      names = "--max-queue",
      paramLabel = "N",
      defaultValue = "256",
      description = "Frames that may wait for one slow node (default ${DEFAULT-VALUE}).")
  int maxQueue;

  @Option(
      names = "--metrics-listen",
      paramLabel = "ADDR",
      description =
          "Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9090 (default: none).")
  String metricsListen;

  @Override
  public Integer call() throws Exception {
    StandaloneRelay.Settings settings;
    try {
      int colon = listen.lastIndexOf(':');
      if (colon < 0) {
        throw new IllegalArgumentException("--listen must be HOST:PORT, not '" + listen + "'");
      }
      int port = Integer.parseInt(listen.substring(colon + 1));
      if (maxQueue < 1) {
        throw new IllegalArgumentException("--max-queue must be at least 1");
      }
      String apiKey;
      try {
        apiKey = Files.readString(apiKeyFile).strip();
      } catch (IOException e) {
        throw new IllegalArgumentException(
            "cannot read the API key from " + apiKeyFile + ": " + e.getMessage());
      }
      settings =
          new StandaloneRelay.Settings(
              listen.substring(0, colon).replaceAll("^\\[|]$", ""),
              port,
              dataDir,
              region,
              loginServer,
              apiKey,
              stunPort == 0 ? null : stunPort,
              maxQueue,
              metricsListen);
      if (metricsListen != null) {
        MetricsEndpoint.parse(metricsListen, "--metrics-listen");
      }
    } catch (IllegalArgumentException e) {
      System.err.println("trellis relay: " + e.getMessage());
      return 1;
    }
    StandaloneRelay relay;
    try {
      relay = StandaloneRelay.start(settings);
    } catch (IOException e) {
      System.err.println("trellis relay: " + e.getMessage());
      return 1;
    }
    Runtime.getRuntime().addShutdownHook(new Thread(relay::close, "trellis-relay-shutdown"));
    System.out.println(
        "trellis relay listening on "
            + settings.listenHost()
            + ":"
            + relay.port()
            + ", region "
            + region);
    if (relay.stunPort() >= 0) {
      System.out.println("STUN on UDP " + relay.stunPort());
    }
    System.out.println("relay public key: " + relay.publicKeyBase64());
    System.out.println(
        "add to the server's config: trellis.relay.others += { region = \""
            + region
            + "\", url = \"http://HOST:"
            + relay.port()
            + "\", key = \""
            + relay.publicKeyBase64()
            + "\""
            + (relay.stunPort() >= 0 ? ", stun-port = " + relay.stunPort() : "")
            + " }");
    System.out.flush();
    relay.awaitTermination();
    return 0;
  }
}
