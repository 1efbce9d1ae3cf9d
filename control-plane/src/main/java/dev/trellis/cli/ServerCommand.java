package dev.trellis.cli;

import dev.trellis.control.server.ServerSettings;
import dev.trellis.control.server.TrellisServer;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** `trellis server`: the coordination server on embedded defaults (LevelDB, one port). */
@Command(
    name = "server",
    mixinStandardHelpOptions = true,
    description =
        "Run the coordination server (foreground). Without a config file it listens on :8080 "
            + "and keeps its data in ./trellis-data.")
final class ServerCommand implements Callable<Integer> {
  @Option(
      names = "--config",
      paramLabel = "FILE",
      description = "HOCON config file (trellis.conf).")
  Path config;

  @Option(
      names = "--data-dir",
      paramLabel = "DIR",
      description = "Data directory (keys, journal, snapshots).")
  Path dataDir;

  @Option(names = "--listen", paramLabel = "HOST:PORT", description = "HTTP listen address.")
  String listen;

  @Override
  public Integer call() throws Exception {
    ServerSettings settings;
    try {
      settings = ServerSettings.load(config, dataDir, listen);
    } catch (IllegalArgumentException e) {
      System.err.println("trellis server: " + e.getMessage());
      return 1;
    }
    TrellisServer server;
    try {
      server = TrellisServer.start(settings);
    } catch (Exception e) {
      System.err.println("trellis server: " + e.getMessage());
      return 1;
    }
    Runtime.getRuntime().addShutdownHook(new Thread(server::close, "trellis-server-shutdown"));
    System.out.println(
        "trellis server listening on " + settings.listenHost() + ":" + server.port());
    if (server.stunPort() >= 0) {
      System.out.println("STUN on UDP " + server.stunPort());
    }
    System.out.println("server URL: " + server.url());
    System.out.println("cluster roles: " + String.join(", ", server.roles()));
    System.out.println("server public key: " + server.publicKeyBase64());
    System.out.println("data directory: " + settings.dataDir());
    System.out.flush();
    server.awaitTermination();
    return 0;
  }
}
