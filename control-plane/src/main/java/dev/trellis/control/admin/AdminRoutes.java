package dev.trellis.control.admin;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectReader;
import dev.trellis.control.Result;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.console.ConsoleRoutes;
import dev.trellis.control.console.ConsoleSessions;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.policy.PolicyAccess;
import dev.trellis.control.policy.PolicyRegistry;
import dev.trellis.control.quality.QualityHistory;
import dev.trellis.control.user.User;
import dev.trellis.proto.control.ControlJson;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpMethods;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.scaladsl.model.EntityStreamSizeException;

/**
 * The admin HTTP API under {@code /api/v1}: a thin JSON shell over {@link Admin}. Every request
 * needs {@code Authorization: Bearer <API key>}. Bodies are read whole (at most {@link #MAX_BODY}
 * bytes) and checked field by field before anything is sent to {@link Admin}, so a bad request
 * changes nothing.
 */
public final class AdminRoutes extends AllDirectives {

  static final long MAX_BODY = 64 * 1024;

  /** Fits MAX_BODY with 44-character base64 keys. */
  static final int MAX_KEYS_CHECKED = 1000;

  private static final Duration ASK_TIMEOUT = Admin.ASK_TIMEOUT.plusSeconds(5);
  private static final ObjectReader READER =
      ControlJson.MAPPER
          .reader()
          .with(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
          .with(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  private final ActorRef<Admin.Command> admin;
  private final ActorRef<ApiKeyRegistry.Command> apiKeys;
  private final ActorSystem<?> system;
  private final Clock clock;
  private final ConsoleSessions console; // null: no console sessions accepted

  public AdminRoutes(
      ActorRef<Admin.Command> admin,
      ActorRef<ApiKeyRegistry.Command> apiKeys,
      ActorSystem<?> system,
      Clock clock,
      ConsoleSessions console) {
    this.console = console;
    this.admin = admin;
    this.apiKeys = apiKeys;
    this.system = system;
    this.clock = clock;
  }

  /** Everything under {@code /api}; unknown paths there answer 404 JSON. */
  public Route route() {
    return pathPrefix(
        "api", () -> concat(pathPrefix("v1", () -> authenticated(this::v1)), notFound()));
  }

  private Route v1() {
    return concat(
        path(
            "users",
            () ->
                concat(
                    get(() -> reply(ask(Admin.ListUsers::new), 200)),
                    post(
                        () ->
                            body(
                                false,
                                b -> {
                                  String name = b.string("name", true);
                                  b.done();
                                  return reply(
                                      this.<User>ask(r -> new Admin.CreateUser(name, r)), 201);
                                })),
                    methodNotAllowed("GET, POST"))),
        path(
            PathMatchers.segment("users").slash(PathMatchers.segment()),
            name ->
                concat(
                    delete(() -> reply(this.<User>ask(r -> new Admin.DeleteUser(name, r)), 200)),
                    methodNotAllowed("DELETE"))),
        path(
            "authkeys",
            () ->
                concat(
                    get(
                        () ->
                            parameterOptional(
                                "user",
                                user ->
                                    reply(
                                        this.<Admin.AuthKeyList>ask(
                                            r -> new Admin.ListAuthKeys(user.orElse(null), r)),
                                        200))),
                    post(
                        () ->
                            body(
                                false,
                                b -> {
                                  String user = b.string("user", true);
                                  boolean reusable = b.bool("reusable");
                                  boolean ephemeral = b.bool("ephemeral");
                                  Duration expiration = b.duration("expiration");
                                  Set<String> tags = b.strings("tags", false);
                                  b.done();
                                  return reply(
                                      this.<AuthKeyRegistry.CreatedAuthKey>ask(
                                          r ->
                                              new Admin.CreateAuthKey(
                                                  user, reusable, ephemeral, expiration, tags, r)),
                                      201);
                                })),
                    methodNotAllowed("GET, POST"))),
        path(
            PathMatchers.segment("authkeys").slash(PathMatchers.segment()).slash("expire"),
            id ->
                concat(
                    post(
                        () ->
                            reply(
                                this.<AuthKeyRegistry.AuthKey>ask(
                                    r -> new Admin.ExpireAuthKey(id, r)),
                                200)),
                    methodNotAllowed("POST"))),
        path(
            "nodes",
            () ->
                concat(
                    get(
                        () ->
                            parameterOptional(
                                "user",
                                user ->
                                    reply(
                                        this.<Admin.NodeList>ask(
                                            r -> new Admin.ListNodes(user.orElse(null), r)),
                                        200))),
                    methodNotAllowed("GET"))),
        path(
            PathMatchers.segment("nodes").slash(PathMatchers.segment()),
            id ->
                concat(
                    delete(
                        () ->
                            nodeId(
                                id,
                                n ->
                                    reply(
                                        this.<NodeRecord>ask(r -> new Admin.DeleteNode(n, r)),
                                        200))),
                    methodNotAllowed("DELETE"))),
        path(
            PathMatchers.segment("nodes").slash(PathMatchers.segment()).slash("expire"),
            id ->
                concat(
                    post(
                        () ->
                            nodeId(
                                id,
                                n ->
                                    reply(
                                        this.<NodeRecord>ask(r -> new Admin.ExpireNode(n, r)),
                                        200))),
                    methodNotAllowed("POST"))),
        path(
            PathMatchers.segment("nodes").slash(PathMatchers.segment()).slash("rename"),
            id ->
                concat(
                    post(
                        () ->
                            nodeId(
                                id,
                                n ->
                                    body(
                                        false,
                                        b -> {
                                          String name = b.string("name", true);
                                          b.done();
                                          return reply(
                                              this.<NodeRecord>ask(
                                                  r -> new Admin.RenameNode(n, name, r)),
                                              200);
                                        }))),
                    methodNotAllowed("POST"))),
        path(
            PathMatchers.segment("nodes").slash(PathMatchers.segment()).slash("tags"),
            id ->
                concat(
                    post(
                        () ->
                            nodeId(
                                id,
                                n ->
                                    body(
                                        false,
                                        b -> {
                                          Set<String> tags = b.strings("tags", true);
                                          b.done();
                                          return reply(
                                              this.<NodeRecord>ask(
                                                  r -> new Admin.TagNode(n, tags, r)),
                                              200);
                                        }))),
                    methodNotAllowed("POST"))),
        path(
            "apikeys",
            () ->
                concat(
                    get(() -> reply(ask(Admin.ListApiKeys::new), 200)),
                    post(
                        () ->
                            body(
                                true,
                                b -> {
                                  Duration expiration = b.duration("expiration");
                                  b.done();
                                  return reply(
                                      this.<ApiKeyRegistry.CreatedApiKey>ask(
                                          r -> new Admin.CreateApiKey(expiration, r)),
                                      201);
                                })),
                    methodNotAllowed("GET, POST"))),
        path(
            "policy",
            () ->
                concat(
                    get(() -> reply(ask(Admin.GetPolicy::new), 200)),
                    put(
                        () ->
                            policyText(
                                text ->
                                    this.<PolicyRegistry.Current>ask(
                                        r -> new Admin.SetPolicy(text, r)))),
                    delete(() -> reply(ask(Admin.ClearPolicy::new), 200)),
                    methodNotAllowed("GET, PUT, DELETE"))),
        path(
            PathMatchers.segment("policy").slash("check"),
            () ->
                concat(
                    post(
                        () ->
                            policyText(
                                text ->
                                    this.<PolicyAccess.Checked>ask(
                                        r -> new Admin.CheckPolicy(text, r)))),
                    methodNotAllowed("POST"))),
        path(
            PathMatchers.segment("policy").slash("why"),
            () ->
                concat(
                    post(
                        () ->
                            body(
                                false,
                                b -> {
                                  String src = b.string("src", true);
                                  String dst = b.string("dst", true);
                                  String proto = b.string("proto", false);
                                  b.done();
                                  return reply(
                                      this.<PolicyAccess.Answer>ask(
                                          r -> new Admin.ExplainAccess(src, dst, proto, r)),
                                      200);
                                })),
                    methodNotAllowed("POST"))),
        path(
            "cluster",
            () ->
                concat(
                    get(() -> reply(ask(Admin.GetClusterStatus::new), 200)),
                    methodNotAllowed("GET"))),
        // `trellis console`: a one-time login link to the web console (API key only).
        path(
            PathMatchers.segment("console").slash("links"),
            () ->
                concat(
                    post(
                        () ->
                            console == null
                                ? complete(error(404, "the console is not served here"))
                                // The link is for the address the admin reached this server at.
                                : extractUri(
                                    uri -> {
                                      String called = uri.toString();
                                      String base = called.substring(0, called.indexOf("/api/"));
                                      return complete(
                                          json(
                                              201,
                                              Map.of(
                                                  "url",
                                                  base
                                                      + "/console/login?token="
                                                      + console.newLink(),
                                                  "expiresInSeconds",
                                                  ConsoleSessions.LINK_LIFETIME.toSeconds())));
                                    })),
                    methodNotAllowed("POST"))),
        path(
            "quality",
            () ->
                concat(get(() -> reply(ask(Admin.GetQuality::new), 200)), methodNotAllowed("GET"))),
        path(
            PathMatchers.segment("quality")
                .slash(PathMatchers.segment())
                .slash(PathMatchers.segment()),
            (from, to) ->
                nodeId(
                    from,
                    a ->
                        nodeId(
                            to,
                            b ->
                                concat(
                                    get(
                                        () ->
                                            parameterOptional(
                                                "since",
                                                since ->
                                                    sinceMillis(
                                                        since,
                                                        millis ->
                                                            reply(
                                                                this.<QualityHistory.PointList>ask(
                                                                    r ->
                                                                        new Admin.GetQualityHistory(
                                                                            a, b, millis, r)),
                                                                200)))),
                                    methodNotAllowed("GET"))))),
        path(
            "relays",
            () ->
                concat(get(() -> reply(ask(Admin.ListRelays::new), 200)), methodNotAllowed("GET"))),
        // For `trellis relay`: which of these node keys may use a relay.
        path(
            PathMatchers.segment("relay").slash("live-node-keys"),
            () ->
                concat(
                    post(
                        () ->
                            body(
                                false,
                                b -> {
                                  Set<String> keys = b.strings("keys", true);
                                  b.done();
                                  if (keys.size() > MAX_KEYS_CHECKED) {
                                    throw new BadRequest(
                                        "at most " + MAX_KEYS_CHECKED + " keys per request");
                                  }
                                  return reply(
                                      this.<Admin.LiveKeys>ask(
                                          r -> new Admin.LiveNodeKeys(keys, r)),
                                      200);
                                })),
                    methodNotAllowed("POST"))),
        path(
            PathMatchers.segment("apikeys").slash(PathMatchers.segment()).slash("expire"),
            prefix ->
                concat(
                    post(
                        () ->
                            reply(
                                this.<ApiKeyRegistry.ApiKey>ask(
                                    r -> new Admin.ExpireApiKey(prefix, r)),
                                200)),
                    methodNotAllowed("POST"))),
        notFound());
  }

  /** A body {"policy": TEXT} handed to {@code command}, answered 200. */
  private <T> Route policyText(Function<String, CompletionStage<Result<T>>> command) {
    return body(
        false,
        b -> {
          String text = b.string("policy", true);
          b.done();
          return reply(command.apply(text), 200);
        });
  }

  /** Bearer API key, verified by the registry; 401 for missing, unknown or expired keys. */
  private Route authenticated(Supplier<Route> inner) {
    return optionalHeaderValueByName(
        "Authorization",
        header -> {
          Optional<String> key =
              header
                  .map(String::trim)
                  .filter(h -> h.regionMatches(true, 0, "Bearer ", 0, 7))
                  .map(h -> h.substring(7).trim());
          if (key.isEmpty()) {
            return consoleSession(inner);
          }
          CompletionStage<Result<ApiKeyRegistry.ApiKey>> verified =
              AskPattern.ask(
                  apiKeys,
                  r -> new ApiKeyRegistry.VerifyApiKey(key.get(), clock.instant(), r),
                  ASK_TIMEOUT,
                  system.scheduler());
          return onComplete(
              verified,
              t -> {
                if (t.isFailure()) return complete(error(503, "the server did not answer in time"));
                return switch (t.get()) {
                  case Result.Ok<ApiKeyRegistry.ApiKey> ok -> inner.get();
                  case Result.Rejected<ApiKeyRegistry.ApiKey> no
                      when no.code() == Result.Code.EXPIRED ->
                      complete(unauthorized(no.message()));
                  case Result.Rejected<ApiKeyRegistry.ApiKey> no ->
                      complete(unauthorized("invalid API key"));
                };
              });
        });
  }

  /**
   * Without an API key: the web console's session cookie, for reading only (GET, and asking the
   * policy why), and only with the console's own header, which a cross-site form cannot send.
   */
  private Route consoleSession(Supplier<Route> inner) {
    return extractRequest(
        request ->
            optionalCookie(
                ConsoleRoutes.COOKIE,
                cookie ->
                    optionalHeaderValueByName(
                        ConsoleRoutes.HEADER,
                        header -> {
                          boolean reading =
                              request.method() == HttpMethods.GET
                                  || (request.method() == HttpMethods.POST
                                      && request.getUri().path().equals("/api/v1/policy/why"));
                          if (console != null
                              && reading
                              && header.isPresent()
                              && cookie.isPresent()
                              && console.valid(cookie.get().value())) {
                            return inner.get();
                          }
                          return complete(
                              unauthorized(
                                  "missing API key: send Authorization: Bearer <API key>"));
                        })));
  }

  private <T> CompletionStage<Result<T>> ask(Function<ActorRef<Result<T>>, Admin.Command> command) {
    return AskPattern.ask(admin, command::apply, ASK_TIMEOUT, system.scheduler());
  }

  /**
   * Ok as {@code okStatus} with the value as JSON; a rejection as its status with {"error",
   * "code"}.
   */
  private <T> Route reply(CompletionStage<Result<T>> result, int okStatus) {
    return completeWithFuture(
        result.handle(
            (r, failure) -> {
              if (failure != null) return error(503, "the server did not answer in time");
              return switch (r) {
                case Result.Ok<T> ok -> json(okStatus, ok.value());
                case Result.Rejected<T> no -> {
                  Map<String, String> body = new LinkedHashMap<>();
                  body.put("error", no.message());
                  body.put("code", no.code().name());
                  yield json(status(no.code()), body);
                }
              };
            }));
  }

  static int status(Result.Code code) {
    return switch (code) {
      case NOT_FOUND -> 404;
      case ALREADY_EXISTS, CONFLICT, USED -> 409;
      case INVALID -> 400;
      case EXPIRED -> 410;
      case UNAVAILABLE -> 503;
    };
  }

  private Route nodeId(String text, Function<Long, Route> inner) {
    long id;
    try {
      id = Long.parseLong(text);
    } catch (NumberFormatException e) {
      return complete(error(400, "node id '" + text + "' is not a number"));
    }
    return inner.apply(id);
  }

  /**
   * The body as a JSON object, at most {@link #MAX_BODY} bytes; an empty body is {} if {@code
   * emptyAllowed}. {@link BadRequest} thrown by {@code inner} becomes 400.
   */
  private Route body(boolean emptyAllowed, BodyRoute inner) {
    return extractRequestEntity(
        entity -> {
          if (entity.getContentLengthOption().isPresent()
              && entity.getContentLengthOption().getAsLong() > MAX_BODY) {
            entity.discardBytes(system);
            return complete(tooLarge());
          }
          // withSizeLimit: a body without Content-Length (chunked) that grows too large fails with
          // EntityStreamSizeException (413) too; toStrict alone reports it as a generic
          // EntityStreamException.
          return onComplete(
              entity.withSizeLimit(MAX_BODY).toStrict(10_000, MAX_BODY, system),
              t -> {
                if (t.isFailure()) {
                  return complete(
                      causedBy(t.failed().get(), EntityStreamSizeException.class)
                          ? tooLarge()
                          : error(400, "cannot read the request body"));
                }
                byte[] bytes = t.get().getData().toArray();
                JsonNode node;
                try {
                  node =
                      bytes.length == 0 || new String(bytes, StandardCharsets.UTF_8).isBlank()
                          ? (emptyAllowed ? ControlJson.MAPPER.createObjectNode() : null)
                          : READER.readTree(bytes);
                } catch (JsonProcessingException e) {
                  String where =
                      e.getLocation() == null
                          ? ""
                          : " at line "
                              + e.getLocation().getLineNr()
                              + ", column "
                              + e.getLocation().getColumnNr();
                  return complete(
                      error(400, "malformed JSON" + where + ": " + e.getOriginalMessage()));
                } catch (IOException e) {
                  return complete(error(400, "malformed JSON: " + e.getMessage()));
                }
                if (node == null)
                  return complete(error(400, "request body missing: send a JSON object"));
                if (!node.isObject())
                  return complete(error(400, "the request body must be a JSON object"));
                try {
                  return inner.apply(new Body(node));
                } catch (BadRequest e) {
                  return complete(error(400, e.getMessage()));
                }
              });
        });
  }

  private static boolean causedBy(Throwable t, Class<? extends Throwable> type) {
    for (Throwable c = t; c != null; c = c.getCause()) if (type.isInstance(c)) return true;
    return false;
  }

  /**
   * {@code ?since=SECONDS}: that many seconds back from now (default: the whole history); anything
   * but a whole number from 1 to 10 years is a bad request.
   */
  private Route sinceMillis(java.util.Optional<String> since, Function<Long, Route> inner) {
    if (since.isEmpty()) {
      return inner.apply(0L);
    }
    long seconds;
    try {
      seconds = Long.parseLong(since.get());
    } catch (NumberFormatException e) {
      return complete(error(400, "since must be a number of seconds, not '" + since.get() + "'"));
    }
    if (seconds < 1 || seconds > MAX_SINCE_SECONDS) {
      return complete(
          error(400, "since must be 1 to " + MAX_SINCE_SECONDS + " seconds, not " + seconds));
    }
    return inner.apply(clock.millis() - seconds * 1000);
  }

  private static final long MAX_SINCE_SECONDS = 10L * 366 * 24 * 3600;

  private Route methodNotAllowed(String allowed) {
    return complete(
        error(405, "method not allowed; use " + allowed)
            .addHeader(RawHeader.create("Allow", allowed)));
  }

  private Route notFound() {
    return extractRequest(
        request ->
            complete(
                error(
                    404,
                    "no such API endpoint: "
                        + request.method().value()
                        + " "
                        + request.getUri().path())));
  }

  private static HttpResponse tooLarge() {
    return error(413, "request body larger than " + MAX_BODY / 1024 + " KiB");
  }

  private static HttpResponse unauthorized(String message) {
    return error(401, message).addHeader(RawHeader.create("WWW-Authenticate", "Bearer"));
  }

  static HttpResponse error(int status, String message) {
    return json(status, Map.of("error", message));
  }

  static HttpResponse json(int status, Object value) {
    try {
      return HttpResponse.create()
          .withStatus(StatusCodes.get(status))
          .withEntity(ContentTypes.APPLICATION_JSON, ControlJson.MAPPER.writeValueAsBytes(value));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot encode " + value.getClass().getSimpleName(), e);
    }
  }

  @FunctionalInterface
  private interface BodyRoute {
    Route apply(Body body) throws BadRequest;
  }

  /** A request body that was not acceptable; the message is shown to the caller. */
  static final class BadRequest extends Exception {
    BadRequest(String message) {
      super(message);
    }
  }

  /** Typed access to a JSON object's fields; {@link #done()} refuses any field nobody asked for. */
  static final class Body {
    private final JsonNode node;
    private final Set<String> known = new LinkedHashSet<>();

    Body(JsonNode node) {
      this.node = node;
    }

    private JsonNode field(String name) {
      known.add(name);
      JsonNode value = node.get(name);
      return value == null || value.isNull() ? null : value;
    }

    String string(String name, boolean required) throws BadRequest {
      JsonNode value = field(name);
      if (value == null) {
        if (required) throw new BadRequest("field '" + name + "' is required");
        return null;
      }
      if (!value.isTextual()) throw new BadRequest("field '" + name + "' must be a string");
      return value.textValue();
    }

    /** Absent or null means false. */
    boolean bool(String name) throws BadRequest {
      JsonNode value = field(name);
      if (value == null) return false;
      if (!value.isBoolean()) throw new BadRequest("field '" + name + "' must be true or false");
      return value.booleanValue();
    }

    /** "24h", "90d", ISO-8601; absent or null means none. */
    Duration duration(String name) throws BadRequest {
      String text = string(name, false);
      if (text == null) return null;
      try {
        return Durations.parse(text);
      } catch (IllegalArgumentException e) {
        throw new BadRequest("field '" + name + "': " + e.getMessage());
      }
    }

    /** An array of strings; absent or null is an empty set unless required. */
    Set<String> strings(String name, boolean required) throws BadRequest {
      JsonNode value = field(name);
      if (value == null) {
        if (required) throw new BadRequest("field '" + name + "' is required");
        return Set.of();
      }
      if (!value.isArray())
        throw new BadRequest("field '" + name + "' must be an array of strings");
      Set<String> out = new LinkedHashSet<>();
      for (JsonNode item : value) {
        if (!item.isTextual())
          throw new BadRequest("field '" + name + "' must be an array of strings");
        out.add(item.textValue());
      }
      return out;
    }

    void done() throws BadRequest {
      List<String> unknown = new ArrayList<>();
      for (Iterator<String> names = node.fieldNames(); names.hasNext(); ) {
        String n = names.next();
        if (!known.contains(n)) unknown.add(n);
      }
      if (!unknown.isEmpty()) {
        throw new BadRequest(
            "unknown field"
                + (unknown.size() == 1 ? " '" : "s '")
                + String.join("', '", unknown)
                + "'"
                + (known.isEmpty() ? "" : "; expected " + String.join(", ", known)));
      }
    }
  }
}
