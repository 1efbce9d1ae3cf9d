package dev.trellis.control.apikey;

import dev.trellis.control.CopyOnWrite;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.control.Secrets;
import dev.trellis.persistence.CborSerializable;
import java.time.Clock;
import java.time.Instant;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;

/**
 * Admin API keys. Secrets look like {@code trellis-api-<12-char prefix>-<32 hex>}; the prefix is
 * public and names the key, the secret is kept only as SHA-256.
 */
public final class ApiKeyRegistry
    extends EventSourcedBehavior<
        ApiKeyRegistry.Command, ApiKeyRegistry.Event, ApiKeyRegistry.State> {

  public static final PersistenceId PERSISTENCE_ID = PersistenceId.ofUniqueId("apikeys");
  public static final String SECRET_PREFIX = "trellis-api-";

  /**
   * An admin API key as listed (never the secret). {@code expiration} null means never; {@code
   * expired} means expired explicitly.
   */
  public record ApiKey(String prefix, Instant createdAt, Instant expiration, boolean expired)
      implements CborSerializable {

    /** Expired explicitly or by time at {@code now}. */
    public boolean expiredAt(Instant now) {
      return expired || (expiration != null && !now.isBefore(expiration));
    }
  }

  /** A new API key and its secret, which is shown this once and stored only hashed. */
  public record CreatedApiKey(ApiKey key, String secret) implements CborSerializable {}

  /** Crosses cluster members (the registry is a sharded entity), so serializable. */
  public sealed interface Command extends CborSerializable {}

  /** {@code expiration} null = never expires. */
  public record CreateApiKey(Instant expiration, ActorRef<Result<CreatedApiKey>> replyTo)
      implements Command {}

  public record VerifyApiKey(String secret, Instant now, ActorRef<Result<ApiKey>> replyTo)
      implements Command {}

  public record ExpireApiKey(String prefix, Instant now, ActorRef<Result<ApiKey>> replyTo)
      implements Command {}

  public record ListApiKeys(ActorRef<List<ApiKey>> replyTo) implements Command {}

  public sealed interface Event extends CborSerializable {}

  public record ApiKeyCreated(
      String prefix, Instant createdAt, Instant expiration, String secretSha256) implements Event {}

  public record ApiKeyExpired(String prefix, Instant at) implements Event {}

  public record StoredApiKey(
      String prefix, Instant createdAt, Instant expiration, String secretSha256, boolean expired)
      implements CborSerializable {
    ApiKey view() {
      return new ApiKey(prefix, createdAt, expiration, expired);
    }
  }

  /** Keys by prefix. */
  public record State(Map<String, StoredApiKey> keys) implements CborSerializable {}

  public static Behavior<Command> create() {
    return create(Clock.systemUTC());
  }

  public static Behavior<Command> create(Clock clock) {
    return new ApiKeyRegistry(clock);
  }

  private final Clock clock;

  private ApiKeyRegistry(Clock clock) {
    super(PERSISTENCE_ID);
    this.clock = clock;
  }

  @Override
  public State emptyState() {
    return new State(Map.of());
  }

  @Override
  public RetentionCriteria retentionCriteria() {
    return RetentionCriteria.snapshotEvery(100, 2);
  }

  @Override
  public CommandHandler<Command, Event, State> commandHandler() {
    return (state, command) ->
        switch (command) {
          case CreateApiKey c -> create(state, c);
          case VerifyApiKey v -> verify(state, v);
          case ExpireApiKey e -> expire(state, e);
          case ListApiKeys l ->
              Effect()
                  .reply(
                      l.replyTo(),
                      state.keys().values().stream()
                          .map(StoredApiKey::view)
                          .sorted(
                              Comparator.comparing(ApiKey::createdAt).thenComparing(ApiKey::prefix))
                          .toList());
        };
  }

  private Effect<Event, State> create(State state, CreateApiKey command) {
    Instant now = clock.instant();
    if (command.expiration() != null && !command.expiration().isAfter(now)) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(
                  Code.INVALID, "expiration " + command.expiration() + " is not in the future"));
    }
    String prefix;
    do prefix = Secrets.newId();
    while (state.keys().containsKey(prefix));
    String secret = Secrets.newSecret(SECRET_PREFIX, prefix);
    String keyPrefix = prefix;
    return Effect()
        .persist(new ApiKeyCreated(prefix, now, command.expiration(), Secrets.sha256Hex(secret)))
        .thenReply(
            command.replyTo(),
            s -> Result.ok(new CreatedApiKey(s.keys().get(keyPrefix).view(), secret)));
  }

  private Effect<Event, State> verify(State state, VerifyApiKey command) {
    String prefix = Secrets.idOf(SECRET_PREFIX, command.secret());
    StoredApiKey key = prefix == null ? null : state.keys().get(prefix);
    if (key == null || !Secrets.matches(command.secret(), key.secretSha256())) {
      return Effect().reply(command.replyTo(), Result.rejected(Code.NOT_FOUND, "unknown API key"));
    }
    if (key.view().expiredAt(command.now())) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(Code.EXPIRED, "API key " + prefix + " has expired"));
    }
    return Effect().reply(command.replyTo(), Result.ok(key.view()));
  }

  private Effect<Event, State> expire(State state, ExpireApiKey command) {
    StoredApiKey key = state.keys().get(command.prefix());
    if (key == null) {
      return Effect()
          .reply(
              command.replyTo(), Result.rejected(Code.NOT_FOUND, "no API key " + command.prefix()));
    }
    if (key.expired()) return Effect().reply(command.replyTo(), Result.ok(key.view()));
    return Effect()
        .persist(new ApiKeyExpired(key.prefix(), command.now()))
        .thenReply(command.replyTo(), s -> Result.ok(s.keys().get(key.prefix()).view()));
  }

  @Override
  public EventHandler<State, Event> eventHandler() {
    return (state, event) ->
        switch (event) {
          case ApiKeyCreated e ->
              put(
                  state,
                  new StoredApiKey(
                      e.prefix(), e.createdAt(), e.expiration(), e.secretSha256(), false));
          case ApiKeyExpired e -> {
            StoredApiKey key = state.keys().get(e.prefix());
            yield key == null
                ? state
                : put(
                    state,
                    new StoredApiKey(
                        key.prefix(), key.createdAt(), key.expiration(), key.secretSha256(), true));
          }
        };
  }

  private static State put(State state, StoredApiKey key) {
    return new State(CopyOnWrite.with(state.keys(), key.prefix(), key));
  }
}
