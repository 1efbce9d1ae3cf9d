package dev.trellis.control.authkey;

import static dev.trellis.control.CopyOnWrite.with;

import dev.trellis.control.CopyOnWrite;
import dev.trellis.control.Keys;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.control.Secrets;
import dev.trellis.control.Tags;
import dev.trellis.persistence.CborSerializable;
import java.time.Clock;
import java.time.Instant;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;

/**
 * Pre-auth keys that let machines register. Secrets look like {@code trellis-auth-<12-char id>-<32
 * hex>}; the id is public, the secret is kept only as SHA-256.
 */
public final class AuthKeyRegistry
    extends EventSourcedBehavior<
        AuthKeyRegistry.Command, AuthKeyRegistry.Event, AuthKeyRegistry.State> {

  public static final PersistenceId PERSISTENCE_ID = PersistenceId.ofUniqueId("authkeys");
  public static final String SECRET_PREFIX = "trellis-auth-";

  /**
   * A pre-auth key as shown to admins (never the secret). {@code expiration} null means never;
   * {@code expired} means expired explicitly by an admin; {@code used} means some machine used it.
   */
  public record AuthKey(
      String id,
      String user,
      boolean reusable,
      boolean ephemeral,
      Instant createdAt,
      Instant expiration,
      Set<String> tags,
      boolean used,
      boolean expired)
      implements CborSerializable {

    /** Expired explicitly or by time at {@code now}. */
    public boolean expiredAt(Instant now) {
      return expired || (expiration != null && !now.isBefore(expiration));
    }
  }

  /** A new auth key and its secret, which is shown this once and stored only hashed. */
  public record CreatedAuthKey(AuthKey key, String secret) implements CborSerializable {}

  /** What an accepted auth key lets a machine register as. */
  public record AuthKeyGrant(String keyId, String user, boolean ephemeral, Set<String> tags)
      implements CborSerializable {}

  /** Crosses cluster members (the registry is a sharded entity), so serializable. */
  public sealed interface Command extends CborSerializable {}

  /** {@code expiration} null = never expires; the caller has checked that the user exists. */
  public record CreateAuthKey(
      String user,
      boolean reusable,
      boolean ephemeral,
      Instant expiration,
      Set<String> tags,
      ActorRef<Result<CreatedAuthKey>> replyTo)
      implements Command {}

  /**
   * A machine presents a secret. A single-use key may be presented again by the machine that used
   * it (a retried registration), never by another.
   */
  public record UseAuthKey(
      String secret, String machineKey, Instant now, ActorRef<Result<AuthKeyGrant>> replyTo)
      implements Command {}

  public record ExpireAuthKey(String keyId, Instant now, ActorRef<Result<AuthKey>> replyTo)
      implements Command {}

  /** {@code user} null lists every user's keys. */
  public record ListAuthKeys(String user, ActorRef<List<AuthKey>> replyTo) implements Command {}

  public sealed interface Event extends CborSerializable {}

  public record AuthKeyCreated(
      String keyId,
      String user,
      boolean reusable,
      boolean ephemeral,
      Instant createdAt,
      Instant expiration,
      Set<String> tags,
      String secretSha256)
      implements Event {}

  public record AuthKeyUsed(String keyId, String machineKey) implements Event {}

  public record AuthKeyExpired(String keyId, Instant at) implements Event {}

  public record StoredAuthKey(
      String id,
      String user,
      boolean reusable,
      boolean ephemeral,
      Instant createdAt,
      Instant expiration,
      Set<String> tags,
      String secretSha256,
      Set<String> usedBy,
      boolean expired)
      implements CborSerializable {

    AuthKey view() {
      return new AuthKey(
          id, user, reusable, ephemeral, createdAt, expiration, tags, !usedBy.isEmpty(), expired);
    }

    StoredAuthKey usedBy(String machineKey) {
      return new StoredAuthKey(
          id,
          user,
          reusable,
          ephemeral,
          createdAt,
          expiration,
          tags,
          secretSha256,
          with(usedBy, machineKey),
          expired);
    }

    StoredAuthKey expire() {
      return new StoredAuthKey(
          id, user, reusable, ephemeral, createdAt, expiration, tags, secretSha256, usedBy, true);
    }
  }

  /** Keys by public id. */
  public record State(Map<String, StoredAuthKey> keys) implements CborSerializable {}

  public static Behavior<Command> create() {
    return create(Clock.systemUTC());
  }

  public static Behavior<Command> create(Clock clock) {
    return new AuthKeyRegistry(clock);
  }

  private final Clock clock;

  private AuthKeyRegistry(Clock clock) {
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
          case CreateAuthKey c -> create(state, c);
          case UseAuthKey u -> use(state, u);
          case ExpireAuthKey e -> expire(state, e);
          case ListAuthKeys l ->
              Effect()
                  .reply(
                      l.replyTo(),
                      state.keys().values().stream()
                          .filter(k -> l.user() == null || l.user().equals(k.user()))
                          .map(StoredAuthKey::view)
                          .sorted(
                              Comparator.comparing(AuthKey::createdAt).thenComparing(AuthKey::id))
                          .toList());
        };
  }

  private Effect<Event, State> create(State state, CreateAuthKey command) {
    Instant now = clock.instant();
    if (command.user() == null || command.user().isBlank()) {
      return Effect()
          .reply(command.replyTo(), Result.rejected(Code.INVALID, "an auth key needs a user"));
    }
    String badTag = Tags.firstInvalid(command.tags());
    if (badTag != null) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(
                  Code.INVALID,
                  "invalid tag '" + badTag + "': tags look like tag:name with a-z 0-9 -"));
    }
    if (command.expiration() != null && !command.expiration().isAfter(now)) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(
                  Code.INVALID, "expiration " + command.expiration() + " is not in the future"));
    }
    String id;
    do id = Secrets.newId();
    while (state.keys().containsKey(id));
    String secret = Secrets.newSecret(SECRET_PREFIX, id);
    var event =
        new AuthKeyCreated(
            id,
            command.user(),
            command.reusable(),
            command.ephemeral(),
            now,
            command.expiration(),
            Tags.copy(command.tags()),
            Secrets.sha256Hex(secret));
    String keyId = id;
    return Effect()
        .persist(event)
        .thenReply(
            command.replyTo(),
            s -> Result.ok(new CreatedAuthKey(s.keys().get(keyId).view(), secret)));
  }

  private Effect<Event, State> use(State state, UseAuthKey command) {
    String id = Secrets.idOf(SECRET_PREFIX, command.secret());
    StoredAuthKey key = id == null ? null : state.keys().get(id);
    if (key == null || !Secrets.matches(command.secret(), key.secretSha256())) {
      return Effect().reply(command.replyTo(), Result.rejected(Code.NOT_FOUND, "unknown auth key"));
    }
    if (!Keys.isPublicKey(command.machineKey())) {
      return Effect()
          .reply(command.replyTo(), Result.rejected(Code.INVALID, "malformed machine key"));
    }
    if (key.view().expiredAt(command.now())) {
      return Effect()
          .reply(
              command.replyTo(), Result.rejected(Code.EXPIRED, "auth key " + id + " has expired"));
    }
    if (!key.reusable()
        && !key.usedBy().isEmpty()
        && !key.usedBy().contains(command.machineKey())) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(
                  Code.USED,
                  "auth key " + id + " is single-use and was already used by another machine"));
    }
    var grant = new AuthKeyGrant(key.id(), key.user(), key.ephemeral(), key.tags());
    if (key.usedBy().contains(command.machineKey())) {
      return Effect().reply(command.replyTo(), Result.ok(grant));
    }
    return Effect()
        .persist(new AuthKeyUsed(id, command.machineKey()))
        .thenReply(command.replyTo(), s -> Result.ok(grant));
  }

  private Effect<Event, State> expire(State state, ExpireAuthKey command) {
    StoredAuthKey key = state.keys().get(command.keyId());
    if (key == null) {
      return Effect()
          .reply(
              command.replyTo(), Result.rejected(Code.NOT_FOUND, "no auth key " + command.keyId()));
    }
    if (key.expired()) return Effect().reply(command.replyTo(), Result.ok(key.view()));
    return Effect()
        .persist(new AuthKeyExpired(key.id(), command.now()))
        .thenReply(command.replyTo(), s -> Result.ok(s.keys().get(key.id()).view()));
  }

  @Override
  public EventHandler<State, Event> eventHandler() {
    return (state, event) ->
        switch (event) {
          case AuthKeyCreated e ->
              put(
                  state,
                  new StoredAuthKey(
                      e.keyId(),
                      e.user(),
                      e.reusable(),
                      e.ephemeral(),
                      e.createdAt(),
                      e.expiration(),
                      Tags.copy(e.tags()),
                      e.secretSha256(),
                      Set.of(),
                      false));
          case AuthKeyUsed e ->
              state.keys().containsKey(e.keyId())
                  ? put(state, state.keys().get(e.keyId()).usedBy(e.machineKey()))
                  : state;
          case AuthKeyExpired e ->
              state.keys().containsKey(e.keyId())
                  ? put(state, state.keys().get(e.keyId()).expire())
                  : state;
        };
  }

  private static State put(State state, StoredAuthKey key) {
    return new State(CopyOnWrite.with(state.keys(), key.id(), key));
  }
}
