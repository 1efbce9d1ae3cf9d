package dev.trellis.dataplane.cli;

import dev.trellis.dataplane.agent.AgentControl;
import dev.trellis.dataplane.agent.AgentState;
import dev.trellis.dataplane.agent.AgentStatus;
import dev.trellis.dataplane.agent.LocalApi;
import dev.trellis.dataplane.agent.PeerPaths;
import dev.trellis.proto.control.ControlMessage.NodeInfo;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The training run for the JDK's ahead-of-time cache of the node commands (JEP 483/515): the build
 * runs {@code java -XX:AOTCacheOutput=trellis-node.aot -jar trellis-node.jar aot-training}, and the
 * launcher starts every later command with that cache, so {@code status}, {@code ip} and {@code
 * ping} find their classes loaded and linked and their hot methods profiled.
 *
 * <p>A cache holds what the training run touched, so this runs the commands people type, in this
 * process, against a local API served by {@link Rehearsal}: an agent of ten peers whose answers are
 * made up here, since a build has no TUN device or root to run the real one. Nothing it prints is
 * shown.
 */
@Command(name = "aot-training", hidden = true, description = "Build-time training run (AOT cache).")
public final class AotTraining implements Callable<Integer> {
  /** How often each command runs: enough for the JIT to profile the client path. */
  static final int ROUNDS = 20;

  @Override
  public Integer call() throws Exception {
    Path dir = Files.createTempDirectory("trellis-aot-training");
    PrintStream out = System.out;
    PrintStream err = System.err;
    try (LocalApi api = LocalApi.start(AgentState.socketPath(dir), new Rehearsal())) {
      PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
      System.setOut(quiet);
      System.setErr(quiet);
      String state = "--state-dir=" + dir;
      List<String[]> commands =
          List.of(
              new String[] {"status", state},
              new String[] {"status", "--json", state},
              new String[] {"ip", state},
              new String[] {"ip", "-4", "robot-3", state},
              new String[] {"ping", "-c", "1", "robot-2", state},
              new String[] {"netcheck", state},
              new String[] {"up", "--hostname", "robot-1", state},
              new String[] {"down", state},
              new String[] {"--version"});
      for (int i = 0; i < ROUNDS; i++) {
        for (String[] c : commands) {
          new CommandLine(new TrellisNode()).execute(c);
        }
      }
      return 0;
    } finally {
      System.setOut(out);
      System.setErr(err);
      try (var files = Files.list(dir)) {
        files.forEach(f -> f.toFile().delete());
      }
      Files.deleteIfExists(dir);
    }
  }

  /** An agent of ten peers that answers the local API with made-up data. */
  static final class Rehearsal implements AgentControl {
    private static final NodeInfo SELF =
        new NodeInfo(
            1,
            "robot-1",
            "lab",
            "c2VsZg==",
            List.of("100.64.0.1/32", "fd7a:115c:a1e0::1/128"),
            List.of("192.0.2.1:41641"),
            true,
            Instant.EPOCH,
            Set.of(),
            null,
            false);

    @Override
    public CompletableFuture<Outcome> up(
        String loginServer, String authKey, String hostname, Consumer<String> progress) {
      progress.accept("training");
      return CompletableFuture.completedFuture(Outcome.success(SELF));
    }

    @Override
    public CompletableFuture<Outcome> setPreferences(Boolean acceptDns, Boolean multicast) {
      return CompletableFuture.completedFuture(Outcome.success(SELF));
    }

    @Override
    public CompletableFuture<Outcome> down() {
      return CompletableFuture.completedFuture(Outcome.success(null));
    }

    @Override
    public CompletableFuture<Outcome> logout() {
      return CompletableFuture.completedFuture(Outcome.success(null));
    }

    @Override
    public CompletableFuture<NetcheckReport> netcheck() {
      return CompletableFuture.completedFuture(
          new NetcheckReport(
              true,
              "198.51.100.1:41641",
              null,
              "default",
              List.of(new RelayLatency("default", "http://192.0.2.10:8080", 1.5, null))));
    }

    @Override
    public CompletableFuture<PeerPaths.PingResult> ping(String peer) {
      return CompletableFuture.completedFuture(new PeerPaths.PingResult("direct", 1_000_000));
    }

    @Override
    public AgentStatus status() {
      List<AgentStatus.Peer> peers = new ArrayList<>();
      for (int i = 2; i <= 11; i++) {
        peers.add(
            new AgentStatus.Peer(
                i,
                "robot-" + i,
                List.of("100.64.0." + i, "fd7a:115c:a1e0::" + i),
                "cGVlcg==",
                true,
                Instant.EPOCH,
                List.of("192.0.2." + i + ":41641"),
                "192.0.2." + i + ":41641",
                Instant.EPOCH,
                1000L * i,
                2000L * i,
                i % 2 == 0 ? "direct" : "relay",
                i % 2 == 0 ? null : "default",
                0.5 + i,
                0.1,
                0.0,
                i % 3 == 0));
      }
      return new AgentStatus(
          AgentStatus.RUNNING,
          "http://192.0.2.10:8080",
          true,
          null,
          "trellis0",
          41641,
          new AgentStatus.Self(
              "robot-1", List.of("100.64.0.1", "fd7a:115c:a1e0::1"), "c2VsZg==", true),
          peers,
          new AgentStatus.Filter(true, 3, 0, Map.of("no-rule", 0L)),
          new AgentStatus.Names("trellis.internal", "file", 10, 2, 0, 0, 0),
          new AgentStatus.Multicast(true, 4, 10, 40, 12, Map.of("rate", 0L)));
    }
  }
}
