package dev.trellis.control.console;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.control.Result;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.proto.control.ControlJson;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.model.ContentType;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpHeader;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.MediaTypes;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.Uri;
import org.apache.pekko.http.javadsl.model.headers.HttpCookie;
import org.apache.pekko.http.javadsl.model.headers.Location;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;
import org.apache.pekko.http.javadsl.model.headers.SameSite;
import org.apache.pekko.http.javadsl.model.headers.SetCookie;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.util.ByteString;

/**
 * The web console at {@code /console/}: its static files (from the jar, no CDN: it works on a
 * campus without internet) and its login. {@code GET /console/login?token=T} redeems a one-time
 * link from {@code trellis console}; {@code POST /console/login} with {"apiKey": KEY} logs in with
 * an API key. Either sets the session cookie {@value #COOKIE} (HttpOnly, SameSite=Strict). The
 * console then reads the admin API with that cookie; {@link dev.trellis.control.admin.AdminRoutes}
 * accepts it for reading only, and only with the header {@value #HEADER}, which no cross-site form
 * can send.
 */
public final class ConsoleRoutes extends AllDirectives {
  public static final String COOKIE = "trellis_console";

  /** Sent by the console's own requests; a cookie without it authorizes nothing. */
  public static final String HEADER = "X-Trellis-Console";

  private static final Duration ASK_TIMEOUT = Duration.ofSeconds(10);

  /** The files the console is made of, by name. */
  private static final Map<String, ContentType> FILES =
      Map.of(
          "index.html", ContentTypes.TEXT_HTML_UTF8,
          "console.js",
              MediaTypes.APPLICATION_JAVASCRIPT.toContentType(
                  org.apache.pekko.http.javadsl.model.HttpCharsets.UTF_8),
          "console.css",
              MediaTypes.TEXT_CSS.toContentType(
                  org.apache.pekko.http.javadsl.model.HttpCharsets.UTF_8));

  /** Nothing from elsewhere, no inline script, no framing. */
  private static final List<HttpHeader> SECURITY_HEADERS =
      List.of(
          RawHeader.create(
              "Content-Security-Policy",
              "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
                  + " connect-src 'self'; frame-ancestors 'none'; base-uri 'none';"
                  + " form-action 'self'"),
          RawHeader.create("X-Content-Type-Options", "nosniff"),
          RawHeader.create("Referrer-Policy", "no-referrer"),
          RawHeader.create("Cache-Control", "no-store"));

  private final ConsoleSessions sessions;
  private final ActorRef<ApiKeyRegistry.Command> apiKeys;
  private final ActorSystem<?> system;
  private final Clock clock;
  private final boolean secureCookie;
  private final Map<String, ByteString> files;

  public ConsoleRoutes(
      ConsoleSessions sessions,
      ActorRef<ApiKeyRegistry.Command> apiKeys,
      ActorSystem<?> system,
      Clock clock,
      boolean secureCookie) {
    this.sessions = sessions;
    this.apiKeys = apiKeys;
    this.system = system;
    this.clock = clock;
    this.secureCookie = secureCookie;
    this.files = load();
  }

  private static Map<String, ByteString> load() {
    Map<String, ByteString> out = new java.util.HashMap<>();
    for (String name : FILES.keySet()) {
      try (InputStream in = ConsoleRoutes.class.getResourceAsStream("/console/" + name)) {
        if (in == null) {
          throw new IllegalStateException("console/" + name + " is missing from the jar");
        }
        out.put(name, ByteString.fromArrayUnsafe(in.readAllBytes()));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return Map.copyOf(out);
  }

  public Route route() {
    return pathPrefix(
        "console",
        () ->
            respondWithHeaders(
                SECURITY_HEADERS,
                () ->
                    concat(
                        pathEnd(() -> redirect(Uri.create("/console/"), StatusCodes.FOUND)),
                        pathSingleSlash(() -> get(() -> file("index.html"))),
                        path(
                            "login", () -> concat(get(this::redeemLink), post(this::logInWithKey))),
                        path("logout", () -> post(this::logOut)),
                        path(
                            PathMatchers.segment(),
                            name ->
                                FILES.containsKey(name)
                                    ? get(() -> file(name))
                                    : complete(StatusCodes.NOT_FOUND, "no such file")))));
  }

  private Route file(String name) {
    return complete(HttpResponse.create().withEntity(FILES.get(name), files.get(name)));
  }

  private HttpCookie cookie(String value, long maxAgeSeconds) {
    return HttpCookie.create(COOKIE, value)
        .withPath("/")
        .withHttpOnly(true)
        .withSecure(secureCookie)
        .withSameSite(SameSite.Strict)
        .withMaxAge(maxAgeSeconds);
  }

  /** A link from `trellis console`: good once; the session cookie, then the console. */
  private Route redeemLink() {
    return parameterOptional(
        "token",
        token -> {
          String session = sessions.redeem(token.orElse(null));
          if (session == null) {
            return complete(
                HttpResponse.create()
                    .withStatus(StatusCodes.UNAUTHORIZED)
                    .withEntity(
                        ContentTypes.TEXT_HTML_UTF8,
                        "<!doctype html><title>Trellis console</title><p>This login link is"
                            + " unknown, used or expired (links last "
                            + ConsoleSessions.LINK_LIFETIME.toMinutes()
                            + " minutes and work once). Run <code>trellis console</code> on the"
                            + " server again, or <a href=\"/console/\">log in with an API"
                            + " key</a>."));
          }
          return complete(
              HttpResponse.create()
                  .withStatus(StatusCodes.SEE_OTHER)
                  .addHeader(Location.create("/console/"))
                  .addHeader(
                      SetCookie.create(
                          cookie(session, ConsoleSessions.SESSION_LIFETIME.toSeconds()))));
        });
  }

  /** {"apiKey": KEY} from the console's login form. */
  private Route logInWithKey() {
    return entity(
        org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller.entityToString(),
        body -> {
          String key;
          try {
            JsonNode json = ControlJson.MAPPER.readTree(body);
            key = json == null ? null : json.path("apiKey").asText(null);
          } catch (IOException e) {
            key = null;
          }
          if (key == null || key.isBlank() || key.length() > 256) {
            return complete(json(400, "{\"error\":\"send {\\\"apiKey\\\": KEY}\"}"));
          }
          String apiKey = key.strip();
          CompletionStage<Result<ApiKeyRegistry.ApiKey>> verified =
              AskPattern.ask(
                  apiKeys,
                  r -> new ApiKeyRegistry.VerifyApiKey(apiKey, clock.instant(), r),
                  ASK_TIMEOUT,
                  system.scheduler());
          return onComplete(
              verified,
              t -> {
                if (t.isFailure()) {
                  return complete(json(503, "{\"error\":\"the server did not answer in time\"}"));
                }
                if (!(t.get() instanceof Result.Ok<ApiKeyRegistry.ApiKey>)) {
                  return complete(json(401, "{\"error\":\"invalid API key\"}"));
                }
                return complete(
                    json(200, "{\"ok\":true}")
                        .addHeader(
                            SetCookie.create(
                                cookie(
                                    sessions.newSession(),
                                    ConsoleSessions.SESSION_LIFETIME.toSeconds()))));
              });
        });
  }

  private Route logOut() {
    return optionalCookie(
        COOKIE,
        c -> {
          c.ifPresent(cookie -> sessions.end(cookie.value()));
          return complete(json(200, "{\"ok\":true}").addHeader(SetCookie.create(cookie("", 0))));
        });
  }

  private static HttpResponse json(int status, String body) {
    return HttpResponse.create()
        .withStatus(StatusCodes.get(status))
        .withEntity(ContentTypes.APPLICATION_JSON, body);
  }
}
