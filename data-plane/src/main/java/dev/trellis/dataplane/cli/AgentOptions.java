package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.dataplane.agent.AgentState;
import dev.trellis.dataplane.agent.LocalApiClient;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.Consumer;
import picocli.CommandLine.Option;

/** `--state-dir`, shared by every command that talks to (or is) the agent. */
final class AgentOptions {
  @Option(
      names = "--state-dir",
      paramLabel = "DIR",
      description = "Agent state directory (default: $TRELLIS_STATE_DIR, else /var/lib/trellis).")
  Path stateDir;

  Path directory() {
    return AgentState.resolveDirectory(stateDir);
  }

  LocalApiClient client() {
    return new LocalApiClient(AgentState.socketPath(directory()));
  }

  /**
   * How long a command waits for an agent that is not answering yet, and for one still starting.
   */
  static final Duration START_GRACE = Duration.ofSeconds(3);

  static final Duration START_WAIT = Duration.ofSeconds(30);
  static final Duration START_POLL = Duration.ofMillis(200);

  /**
   * Sends a request; a failed call or an ok:false answer becomes a {@link CliFailure}. An agent
   * that is not answering yet (`trellis agent &` then at once `trellis up`) is waited for, saying
   * so: a few seconds, or as long as {@link #START_WAIT} while an agent process holds the state
   * directory's lock.
   */
  JsonNode call(ObjectNode request) throws CliFailure {
    return call(request, progress -> {});
  }

  /** The same, handing each progress line the agent sends before its reply to {@code progress}. */
  JsonNode call(ObjectNode request, Consumer<String> progress) throws CliFailure {
    JsonNode reply;
    try {
      reply = callWhenStarted(request, progress);
    } catch (IOException e) {
      throw new CliFailure(e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CliFailure("interrupted");
    }
    if (!reply.path("ok").asBoolean(false)) {
      throw new CliFailure(reply.path("error").asText("the agent refused without saying why"));
    }
    return reply;
  }

  private JsonNode callWhenStarted(ObjectNode request, Consumer<String> progress)
      throws IOException, InterruptedException {
    long start = System.nanoTime();
    boolean told = false;
    while (true) {
      try {
        return client().call(request, LocalApiClient.DEFAULT_TIMEOUT, progress);
      } catch (LocalApiClient.AgentNotRunning e) {
        boolean starting = AgentState.agentAlive(directory());
        Duration limit = starting ? START_WAIT : START_GRACE;
        if (System.nanoTime() - start > limit.toNanos()) {
          throw starting
              ? new LocalApiClient.AgentUnavailable(
                  "the agent at "
                      + directory()
                      + " is running but did not open its socket within "
                      + START_WAIT.toSeconds()
                      + " s; see its log")
              : e;
        }
        if (!told) {
          System.err.println(
              "trellis: waiting for the agent at "
                  + AgentState.socketPath(directory())
                  + " to start...");
          told = true;
        }
        Thread.sleep(START_POLL.toMillis());
      }
    }
  }

  /** A one-line error for stderr; commands turn it into exit status 1. */
  static final class CliFailure extends Exception {
    CliFailure(String message) {
      super(message);
    }
  }
}
