package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.control.server.DataDirLock;
import dev.trellis.control.server.LocalAdminAccess;
import dev.trellis.control.server.ServerSettings;
import dev.trellis.proto.control.ControlJson;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import picocli.CommandLine.Option;

/**
 * How admin commands find the server: {@code --server}/{@code --api-key} (or TRELLIS_SERVER and
 * TRELLIS_API_KEY), else the {@code cli.json} the server keeps in its data directory, found through
 * {@code --data-dir} or {@code --config} (default ./trellis-data). Explicit flags beat the
 * environment, so {@code --data-dir} still works in a shell that exports TRELLIS_SERVER.
 */
final class AdminOptions {
  @Option(
      names = "--server",
      paramLabel = "URL",
      description = "Server URL (default: $TRELLIS_SERVER, else from the data directory).")
  String server;

  @Option(
      names = "--api-key",
      paramLabel = "KEY",
      description = "Admin API key (default: $TRELLIS_API_KEY, else from the data directory).")
  String apiKey;

  @Option(
      names = "--data-dir",
      paramLabel = "DIR",
      description = "Server data directory holding cli.json (default ./trellis-data).")
  Path dataDir;

  @Option(
      names = "--config",
      paramLabel = "FILE",
      description = "Server config file; its trellis.data-dir holds cli.json.")
  Path config;

  /** Where the URL and key in use came from, for error messages; set by {@link #access()}. */
  private String source = "";

  private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);

  /** How long a command waits for a server that holds its data directory but is still starting. */
  static final Duration SERVER_START_WAIT = Duration.ofSeconds(60);

  static final Duration SERVER_START_POLL = Duration.ofMillis(250);

  /** With no server holding the directory (yet), how long to look before saying none was found. */
  static final Duration SERVER_START_GRACE = Duration.ofSeconds(3);

  /** The data directory of a local server found running (its lock held), else null. */
  private Path starting;

  private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(30);

  /** The URL and key to use, or a {@link Failure} saying what is missing. */
  LocalAdminAccess.Access access() throws Failure {
    String url = server;
    String key = apiKey;
    if (url == null && key == null && dataDir == null && config == null) {
      url = blankToNull(System.getenv("TRELLIS_SERVER"));
      key = blankToNull(System.getenv("TRELLIS_API_KEY"));
    }
    if (url != null || key != null) {
      if (url == null || key == null) {
        throw new Failure(
            "pass both --server and --api-key (or set TRELLIS_SERVER and TRELLIS_API_KEY)");
      }
      source =
          server != null || apiKey != null
              ? "--server/--api-key"
              : "$TRELLIS_SERVER/$TRELLIS_API_KEY";
      return new LocalAdminAccess.Access(url.replaceAll("/+$", ""), key);
    }
    Path dir;
    try {
      dir = ServerSettings.load(config, dataDir, null).dataDir().normalize();
    } catch (IllegalArgumentException e) {
      throw new Failure(e.getMessage());
    }
    LocalAdminAccess.Access access;
    try {
      awaitStartingServer(dir);
      access = LocalAdminAccess.read(dir);
    } catch (AccessDeniedException e) {
      throw new Failure(
          "cannot read "
              + dir.resolve(LocalAdminAccess.FILE)
              + ": permission denied (run as the server's user)");
    } catch (IOException e) {
      throw new Failure(
          "cannot read " + dir.resolve(LocalAdminAccess.FILE) + ": " + e.getMessage());
    }
    if (access == null) {
      throw new Failure(
          "no server found: pass --server and --api-key, or run on the server host (looked for "
              + dir.resolve(LocalAdminAccess.FILE)
              + ")");
    }
    source = dir.resolve(LocalAdminAccess.FILE).toString();
    return access;
  }

  /**
   * `trellis server &` then at once `trellis users create`: while a server holds the data directory
   * but has not written cli.json (or does not answer yet), wait for it, saying so.
   */
  private void awaitStartingServer(Path dir) throws Failure {
    long start = System.nanoTime();
    boolean told = false;
    while (!Files.exists(dir.resolve(LocalAdminAccess.FILE))) {
      // A server that holds the directory is starting: wait for it; with none (yet: its JVM may
      // not have got that far), a few seconds.
      boolean starting = DataDirLock.heldByAServer(dir);
      Duration limit = starting ? SERVER_START_WAIT : SERVER_START_GRACE;
      if (System.nanoTime() - start > limit.toNanos()) {
        if (starting) {
          throw new Failure(
              "the server using "
                  + dir
                  + " has not finished starting after "
                  + SERVER_START_WAIT.toSeconds()
                  + " s; see its output");
        }
        return; // the caller says no server was found, and where it looked
      }
      if (!told) {
        System.err.println("trellis: waiting for the server using " + dir + " to start...");
        told = true;
      }
      pause();
    }
    starting = DataDirLock.heldByAServer(dir) ? dir : null;
  }

  private static void pause() throws Failure {
    try {
      Thread.sleep(SERVER_START_POLL.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new Failure("interrupted");
    }
  }

  JsonNode get(String path) throws Failure {
    return send("GET", path, null);
  }

  JsonNode post(String path, Object body) throws Failure {
    return send("POST", path, body);
  }

  JsonNode put(String path, Object body) throws Failure {
    return send("PUT", path, body);
  }

  JsonNode delete(String path) throws Failure {
    return send("DELETE", path, null);
  }

  /**
   * One request; any error (transport or an {"error"} answer) becomes a one-line {@link Failure}.
   */
  private JsonNode send(String method, String path, Object body) throws Failure {
    LocalAdminAccess.Access access = access();
    URI uri;
    try {
      uri = URI.create(access.url() + "/api/v1/" + path);
    } catch (IllegalArgumentException e) {
      throw new Failure("invalid server URL '" + access.url() + "'");
    }
    HttpRequest.Builder request =
        HttpRequest.newBuilder(uri)
            .timeout(REQUEST_TIMEOUT)
            .header("Authorization", "Bearer " + access.apiKey())
            .header("Accept", "application/json");
    try {
      if (body != null) {
        request
            .header("Content-Type", "application/json")
            .method(
                method,
                HttpRequest.BodyPublishers.ofByteArray(ControlJson.MAPPER.writeValueAsBytes(body)));
      } else {
        request.method(method, HttpRequest.BodyPublishers.noBody());
      }
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    HttpResponse<byte[]> response;
    try (HttpClient client = HttpClient.newBuilder().connectTimeout(CONNECT_TIMEOUT).build()) {
      response = sendWhileStarting(client, request.build());
    } catch (HttpConnectTimeoutException | ConnectException e) {
      throw new Failure(
          "cannot reach the Trellis server at " + access.url() + " (URL from " + source + ")");
    } catch (HttpTimeoutException e) {
      throw new Failure("the Trellis server at " + access.url() + " did not answer in time");
    } catch (IOException e) {
      throw new Failure(
          "cannot reach the Trellis server at " + access.url() + " (" + e.getMessage() + ")");
    } catch (IllegalArgumentException e) {
      throw new Failure("invalid server URL '" + access.url() + "'");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new Failure("interrupted");
    }
    JsonNode json;
    try {
      json = ControlJson.MAPPER.readTree(response.body());
    } catch (IOException e) {
      json = null;
    }
    if (response.statusCode() >= 400) {
      String error =
          json != null && json.hasNonNull("error")
              ? json.get("error").asText()
              : "the server answered HTTP " + response.statusCode();
      if (response.statusCode() == 401) {
        throw new Failure(
            "API key refused by the server at "
                + access.url()
                + " ("
                + error
                + "); the key came from "
                + source
                + (source.endsWith(LocalAdminAccess.FILE)
                    ? ", which may be left from another server: point --data-dir at the running"
                        + " server's data directory, or pass --server URL --api-key KEY"
                    : ""));
      }
      throw new Failure(error);
    }
    if (json == null) {
      throw new Failure(
          "the server at " + access.url() + " did not answer with JSON (is it a Trellis server?)");
    }
    return json;
  }

  /** Sends; a refused connection to a local server that is still starting is tried again. */
  private HttpResponse<byte[]> sendWhileStarting(HttpClient client, HttpRequest request)
      throws IOException, InterruptedException, Failure {
    long deadline = System.nanoTime() + SERVER_START_WAIT.toNanos();
    while (true) {
      try {
        return client.send(request, HttpResponse.BodyHandlers.ofByteArray());
      } catch (ConnectException e) {
        if (starting == null
            || System.nanoTime() > deadline
            || !DataDirLock.heldByAServer(starting)) {
          throw e;
        }
        pause();
      }
    }
  }

  static String segment(String text) {
    return URLEncoder.encode(text, StandardCharsets.UTF_8).replace("+", "%20");
  }

  private static String blankToNull(String s) {
    return s == null || s.isBlank() ? null : s;
  }

  /** A one-line error for stderr; commands turn it into exit status 1. */
  static final class Failure extends Exception {
    Failure(String message) {
      super(message);
    }
  }
}
