package dev.trellis.control.console;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.control.server.LocalAdminAccess;
import dev.trellis.control.server.ServerSettings;
import dev.trellis.control.server.TrellisServer;
import dev.trellis.proto.control.ControlJson;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The console's files, its login (one-time links and API keys) and what its cookie may do, over
 * real HTTP. What a person sees is checked in a real browser by ConsoleBrowserTest.
 */
class ConsoleRoutesTest {
  @TempDir static Path dataDir;
  private static TrellisServer server;
  private static String apiKey;
  private static final HttpClient HTTP = HttpClient.newHttpClient(); // no cookie jar: by hand

  @BeforeAll
  static void start() throws Exception {
    server = TrellisServer.start(ServerSettings.load(null, dataDir, "127.0.0.1:0"));
    apiKey = LocalAdminAccess.read(dataDir).apiKey();
  }

  @AfterAll
  static void stop() {
    server.close();
  }

  private static HttpResponse<String> send(
      String method, String path, String body, Map<String, String> headers) throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(server.url() + path))
            .timeout(Duration.ofSeconds(30))
            .method(
                method,
                body == null
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(body));
    headers.forEach(b::header);
    return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  /** The session cookie's value from a Set-Cookie answer (and its attributes checked). */
  private static String sessionCookie(HttpResponse<String> r) {
    String set = r.headers().firstValue("Set-Cookie").orElseThrow();
    assertTrue(set.startsWith(ConsoleRoutes.COOKIE + "="), set);
    assertTrue(set.contains("HttpOnly"), set);
    assertTrue(set.contains("SameSite=Strict"), set);
    assertTrue(set.contains("Path=/"), set);
    return set.substring(set.indexOf('=') + 1, set.indexOf(';'));
  }

  private static Map<String, String> console(String cookie) {
    return Map.of("Cookie", ConsoleRoutes.COOKIE + "=" + cookie, ConsoleRoutes.HEADER, "1");
  }

  @Test
  void filesComeFromTheJarWithAStrictContentSecurityPolicy() throws Exception {
    HttpResponse<String> page = send("GET", "/console/", null, Map.of());
    assertEquals(200, page.statusCode());
    assertTrue(page.headers().firstValue("Content-Type").orElse("").startsWith("text/html"));
    assertTrue(page.body().contains("<script src=\"console.js\" defer></script>"), page.body());
    String csp = page.headers().firstValue("Content-Security-Policy").orElse("");
    assertTrue(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), csp);
    assertFalse(page.body().contains("http://") || page.body().contains("https://"), "no CDN");
    HttpResponse<String> script = send("GET", "/console/console.js", null, Map.of());
    assertEquals(200, script.statusCode());
    assertTrue(
        script
            .headers()
            .firstValue("Content-Type")
            .orElse("")
            .startsWith("application/javascript"));
    assertEquals(302, send("GET", "/console", null, Map.of()).statusCode());
    assertEquals(404, send("GET", "/console/secret.txt", null, Map.of()).statusCode());
  }

  @Test
  void aOneTimeLinkLogsInOnceAndTheCookieOnlyReads() throws Exception {
    // Without a session the console's API calls get nothing.
    assertEquals(
        401, send("GET", "/api/v1/nodes", null, Map.of(ConsoleRoutes.HEADER, "1")).statusCode());

    // Links need an API key.
    assertEquals(401, send("POST", "/api/v1/console/links", null, Map.of()).statusCode());
    HttpResponse<String> created =
        send("POST", "/api/v1/console/links", null, Map.of("Authorization", "Bearer " + apiKey));
    assertEquals(201, created.statusCode(), created.body());
    JsonNode link = ControlJson.MAPPER.readTree(created.body());
    String url = link.path("url").asText();
    assertTrue(url.startsWith(server.url() + "/console/login?token="), url);
    assertEquals(300, link.path("expiresInSeconds").asLong());
    String path = url.substring(server.url().length());

    HttpResponse<String> redeemed = send("GET", path, null, Map.of());
    assertEquals(303, redeemed.statusCode());
    assertEquals("/console/", redeemed.headers().firstValue("Location").orElse(""));
    String cookie = sessionCookie(redeemed);
    // Single use.
    assertEquals(401, send("GET", path, null, Map.of()).statusCode());
    assertEquals(401, send("GET", "/console/login?token=made-up", null, Map.of()).statusCode());

    // The cookie reads, with the console's header only, and writes nothing.
    assertEquals(200, send("GET", "/api/v1/nodes", null, console(cookie)).statusCode());
    assertEquals(
        401,
        send("GET", "/api/v1/nodes", null, Map.of("Cookie", ConsoleRoutes.COOKIE + "=" + cookie))
            .statusCode(),
        "a cookie without the console's header (a cross-site request) reads nothing");
    HttpResponse<String> write =
        send("POST", "/api/v1/users", "{\"name\":\"by-cookie\"}", console(cookie));
    assertEquals(401, write.statusCode(), write.body());
    assertEquals(
        401,
        send("POST", "/api/v1/console/links", null, console(cookie)).statusCode(),
        "a console session cannot make new links");

    // Logging out ends the session.
    assertEquals(200, send("POST", "/console/logout", null, console(cookie)).statusCode());
    assertEquals(401, send("GET", "/api/v1/nodes", null, console(cookie)).statusCode());
  }

  @Test
  void anApiKeyLogsInToo() throws Exception {
    assertEquals(
        401, send("POST", "/console/login", "{\"apiKey\":\"wrong\"}", Map.of()).statusCode());
    assertEquals(400, send("POST", "/console/login", "not json", Map.of()).statusCode());
    HttpResponse<String> ok =
        send("POST", "/console/login", "{\"apiKey\":\"" + apiKey + "\"}", Map.of());
    assertEquals(200, ok.statusCode());
    String cookie = sessionCookie(ok);
    assertEquals(200, send("GET", "/api/v1/cluster", null, console(cookie)).statusCode());
    // Asking the policy why is reading too.
    HttpResponse<String> why =
        send(
            "POST",
            "/api/v1/policy/why",
            "{\"src\":\"nobody\",\"dst\":\"nobody:22\"}",
            console(cookie));
    assertTrue(why.statusCode() != 401, why.statusCode() + " " + why.body());
  }
}
