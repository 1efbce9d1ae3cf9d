package dev.trellis.dataplane.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.dataplane.agent.AgentState;
import dev.trellis.dataplane.agent.LocalApiClient;
import java.io.IOException;
import java.nio.file.Path;
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

  /** Sends a request; a failed call or an ok:false answer becomes a {@link CliFailure}. */
  JsonNode call(ObjectNode request) throws CliFailure {
    JsonNode reply;
    try {
      reply = client().call(request);
    } catch (IOException e) {
      throw new CliFailure(e.getMessage());
    }
    if (!reply.path("ok").asBoolean(false)) {
      throw new CliFailure(reply.path("error").asText("the agent refused without saying why"));
    }
    return reply;
  }

  /** A one-line error for stderr; commands turn it into exit status 1. */
  static final class CliFailure extends Exception {
    CliFailure(String message) {
      super(message);
    }
  }
}
