package dev.trellis.dataplane.agent;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trellis.dataplane.socket.UnixLineServer;
import dev.trellis.proto.control.ControlJson;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's local control socket, {@code <state-dir>/agent.sock} (mode 0600, so only root or the
 * agent's user may steer it). One JSON object per line each way:
 *
 * <pre>
 * {"command":"up","loginServer":URL,"authKey":KEY|null,"hostname":NAME|null,"acceptDns":BOOL|null,"multicast":BOOL|null} → {"ok":true,"self":{NodeInfo}} | {"ok":false,"error":"..."}
 * {"command":"down"}    → {"ok":true}      disconnect, remove peers and addresses, keep the registration
 * {"command":"logout"}  → {"ok":true[,"warning":"..."]}
 * {"command":"status"}  → {"ok":true, ...AgentStatus fields}
 * {"command":"ip"[,"peer":HOSTNAME]} → {"ok":true,"addresses":[...]}
 * {"command":"metrics"} → {"ok":true,"text":"...Prometheus text format..."}
 * </pre>
 *
 * Anything else gets {"ok":false,"error":...}; a connection may carry several requests.
 */
public final class LocalApi implements AutoCloseable {
  /** Longest request line; `up` with a long key fits many times over. */
  static final int MAX_LINE = 64 * 1024;

  static final long UP_TIMEOUT_SECONDS = 30;

  /** The one field of a progress line. */
  static final String PROGRESS = "progress";

  private static final ObjectMapper JSON = ControlJson.MAPPER;
  private static final Logger LOG = LoggerFactory.getLogger(LocalApi.class);

  private final AgentControl agent;
  private final UnixLineServer server;

  private LocalApi(AgentControl agent, Path path) throws IOException {
    this.agent = agent;
    this.server =
        UnixLineServer.start(
            path,
            AgentState.FILE_MODE,
            "trellis-local-api",
            MAX_LINE,
            "another agent is already running at " + path,
            this::converse);
  }

  /**
   * Binds the socket, replacing a stale one; fails ({@link UnixLineServer.InUse}) if another agent
   * is listening on it.
   */
  public static LocalApi start(Path path, AgentControl agent) throws IOException {
    return new LocalApi(agent, path);
  }

  public Path path() {
    return server.path();
  }

  /**
   * One JSON request per line, one reply line each; before the reply, a command may send {@code
   * {"progress": TEXT}} lines (from the agent's loop thread, so writes are serialized on {@code
   * out}).
   */
  private void converse(UnixLineServer.Lines in, OutputStream out) throws IOException {
    String line;
    Consumer<String> progress =
        text -> {
          ObjectNode p = JSON.createObjectNode().put(PROGRESS, text);
          try {
            write(out, p);
          } catch (IOException e) {
            LOG.debug("a client left before the progress of its command: {}", e.getMessage());
          }
        };
    while ((line = in.next()) != null) {
      if (line.isBlank()) {
        continue;
      }
      write(out, handle(line, progress));
    }
  }

  private static void write(OutputStream out, ObjectNode message) throws IOException {
    byte[] bytes = (JSON.writeValueAsString(message) + "\n").getBytes(StandardCharsets.UTF_8);
    synchronized (out) {
      out.write(bytes);
      out.flush();
    }
  }

  /** The text of a progress line, or null when {@code line} is something else (a reply). */
  static String progressText(String line) {
    try {
      JsonNode n = JSON.readTree(line);
      return n != null && n.isObject() && n.size() == 1 && n.path(PROGRESS).isTextual()
          ? n.get(PROGRESS).asText()
          : null;
    } catch (IOException e) {
      return null;
    }
  }

  ObjectNode handle(String line) {
    return handle(line, progress -> {});
  }

  /** One request line to one reply; never throws. */
  ObjectNode handle(String line, Consumer<String> progress) {
    JsonNode request;
    try {
      request = JSON.readTree(line);
    } catch (IOException e) {
      return error("malformed request: not JSON");
    }
    if (request == null || !request.isObject()) {
      return error("malformed request: expected a JSON object");
    }
    JsonNode command = request.get("command");
    if (command == null || !command.isTextual()) {
      return error("malformed request: missing \"command\"");
    }
    try {
      return switch (command.asText()) {
        case "up" -> up(request, progress);
        case "down" -> outcome(agent.down().get(10, TimeUnit.SECONDS));
        case "logout" -> outcome(agent.logout().get(15, TimeUnit.SECONDS));
        case "status" -> status();
        case "ip" -> ip(request);
        case "ping" -> ping(request);
        case "netcheck" -> netcheck();
        case "metrics" -> JSON.createObjectNode().put("ok", true).put("text", agent.metrics());
        default ->
            error(
                "unknown command '"
                    + command.asText()
                    + "' (known: up, down, logout, status, ip, ping, netcheck, metrics)");
      };
    } catch (TimeoutException e) {
      return error("the agent did not finish '" + command.asText() + "' in time");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return error("interrupted");
    } catch (Exception e) {
      LOG.warn("local API command failed", e);
      return error("internal error: " + e.getMessage());
    }
  }

  private ObjectNode up(JsonNode request, Consumer<String> progress) throws Exception {
    String loginServer;
    String authKey;
    String hostname;
    Boolean acceptDns;
    Boolean multicast;
    try {
      loginServer = optionalText(request, "loginServer");
      authKey = optionalText(request, "authKey");
      hostname = optionalText(request, "hostname");
      acceptDns = optionalBoolean(request, "acceptDns");
      multicast = optionalBoolean(request, "multicast");
    } catch (IllegalArgumentException e) {
      return error(e.getMessage());
    }
    try {
      if (acceptDns != null || multicast != null) {
        agent.setPreferences(acceptDns, multicast).get(UP_TIMEOUT_SECONDS, TimeUnit.SECONDS);
      }
      return outcome(
          agent
              .up(loginServer, authKey, hostname, progress)
              .get(UP_TIMEOUT_SECONDS, TimeUnit.SECONDS));
    } catch (TimeoutException e) {
      return error(
          "no answer from the login server within "
              + UP_TIMEOUT_SECONDS
              + " s; the agent keeps trying");
    }
  }

  private ObjectNode status() {
    ObjectNode reply = JSON.valueToTree(agent.status());
    ObjectNode out = JSON.createObjectNode().put("ok", true);
    out.setAll(reply);
    return out;
  }

  private ObjectNode netcheck() throws Exception {
    try {
      AgentControl.NetcheckReport r = agent.netcheck().get(10, TimeUnit.SECONDS);
      ObjectNode out = JSON.createObjectNode().put("ok", true);
      out.set("report", JSON.valueToTree(r));
      return out;
    } catch (ExecutionException e) {
      return error(String.valueOf(e.getCause().getMessage()));
    }
  }

  /** One path-discovery ping: which path answered and the round-trip time. */
  private ObjectNode ping(JsonNode request) throws Exception {
    String peer;
    try {
      peer = optionalText(request, "peer");
    } catch (IllegalArgumentException e) {
      return error(e.getMessage());
    }
    if (peer == null) {
      return error("ping needs a peer (hostname or address)");
    }
    try {
      PeerPaths.PingResult result = agent.ping(peer).get(6, TimeUnit.SECONDS);
      return JSON.createObjectNode()
          .put("ok", true)
          .put("path", result.path())
          .put("rttNanos", result.rttNanos());
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      return error(
          cause instanceof TimeoutException
              ? "no reply from " + peer
              : String.valueOf(cause.getMessage()));
    }
  }

  private ObjectNode ip(JsonNode request) {
    String peer;
    try {
      peer = optionalText(request, "peer");
    } catch (IllegalArgumentException e) {
      return error(e.getMessage());
    }
    AgentStatus status = agent.status();
    List<String> addresses;
    AgentStatus.Names names = status.names() == null ? AgentStatus.Names.OFF : status.names();
    if (peer == null || names.names(peer, status.self().hostname())) {
      addresses = status.self().addresses();
      if (addresses.isEmpty()) {
        return error(
            "this node has no addresses yet ("
                + status.backendState()
                + "); log in with: trellis up");
      }
    } else {
      AgentStatus.Peer match =
          status.peers().stream()
              .filter(p -> names.names(peer, p.hostname()) || peer.equals(p.nodeKey()))
              .findFirst()
              .orElse(null);
      if (match == null) {
        return error("no peer named '" + peer + "'");
      }
      addresses = match.addresses();
    }
    ObjectNode out = JSON.createObjectNode().put("ok", true);
    ArrayNode list = out.putArray("addresses");
    addresses.forEach(list::add);
    return out;
  }

  private static String optionalText(JsonNode request, String field) {
    JsonNode value = request.get(field);
    if (value == null || value.isNull()) {
      return null;
    }
    if (!value.isTextual()) {
      throw new IllegalArgumentException(
          "malformed request: \"" + field + "\" must be a string or null");
    }
    return value.asText();
  }

  private static Boolean optionalBoolean(JsonNode request, String field) {
    JsonNode value = request.get(field);
    if (value == null || value.isNull()) {
      return null;
    }
    if (!value.isBoolean()) {
      throw new IllegalArgumentException(
          "malformed request: \"" + field + "\" must be true, false or null");
    }
    return value.asBoolean();
  }

  private static ObjectNode outcome(AgentControl.Outcome o) {
    if (!o.ok()) {
      return error(o.error());
    }
    ObjectNode out = JSON.createObjectNode().put("ok", true);
    if (o.error() != null) {
      out.put("warning", o.error());
    }
    if (o.self() != null) {
      out.set("self", JSON.valueToTree(o.self()));
    }
    return out;
  }

  static ObjectNode error(String message) {
    return JSON.createObjectNode().put("ok", false).put("error", message);
  }

  @Override
  public void close() {
    server.close();
  }
}
