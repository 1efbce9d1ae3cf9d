package dev.trellis.control.admin;

import com.fasterxml.jackson.annotation.JsonUnwrapped;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.control.Tags;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.control.apikey.ApiKeyRegistry.ApiKey;
import dev.trellis.control.apikey.ApiKeyRegistry.CreatedApiKey;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.authkey.AuthKeyRegistry.AuthKey;
import dev.trellis.control.authkey.AuthKeyRegistry.CreatedAuthKey;
import dev.trellis.control.cluster.ClusterStatus;
import dev.trellis.control.map.NetworkMap;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeDirectory;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.policy.PolicyAccess;
import dev.trellis.control.policy.PolicyRegistry;
import dev.trellis.control.quality.QualityHistory;
import dev.trellis.control.relay.RelayDirectory;
import dev.trellis.control.user.User;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.persistence.CborSerializable;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * The one admin implementation: the HTTP API, the CLI (through it) and any program in the same
 * actor system or cluster send these commands. Operations that touch several entities run the steps
 * in a fixed order so a failure part-way leaves nothing a node could use (a rename is approved by
 * the allocator before the node takes it; a delete stops the node before its addresses are freed).
 *
 * <p>The actor holds no state: each command becomes a chain of asks whose outcome is piped back
 * through the mailbox and answered from there. A step that does not answer in time is logged and
 * the caller gets no reply (its own ask times out); no partial result is invented.
 */
public final class Admin extends AbstractBehavior<Admin.Command> {

  static final Duration ASK_TIMEOUT = Duration.ofSeconds(10);

  public sealed interface Command extends CborSerializable {}

  public record CreateUser(String name, ActorRef<Result<User>> replyTo) implements Command {}

  public record ListUsers(ActorRef<Result<UserList>> replyTo) implements Command {}

  /** CONFLICT while the user still owns nodes. */
  public record DeleteUser(String name, ActorRef<Result<User>> replyTo) implements Command {}

  /** {@code expiration} null = never; NOT_FOUND for an unknown user. */
  public record CreateAuthKey(
      String user,
      boolean reusable,
      boolean ephemeral,
      Duration expiration,
      Set<String> tags,
      ActorRef<Result<CreatedAuthKey>> replyTo)
      implements Command {}

  /** {@code user} null lists every user's keys. */
  public record ListAuthKeys(String user, ActorRef<Result<AuthKeyList>> replyTo)
      implements Command {}

  public record ExpireAuthKey(String id, ActorRef<Result<AuthKey>> replyTo) implements Command {}

  /** {@code user} null lists every node. */
  public record ListNodes(String user, ActorRef<Result<NodeList>> replyTo) implements Command {}

  public record ExpireNode(long id, ActorRef<Result<NodeRecord>> replyTo) implements Command {}

  /** ALREADY_EXISTS if another node has the hostname. */
  public record RenameNode(long id, String newName, ActorRef<Result<NodeRecord>> replyTo)
      implements Command {}

  public record DeleteNode(long id, ActorRef<Result<NodeRecord>> replyTo) implements Command {}

  /** Replaces the node's tags; each must look like {@code tag:name}. */
  public record TagNode(long id, Set<String> tags, ActorRef<Result<NodeRecord>> replyTo)
      implements Command {}

  /** {@code expiration} null = never. */
  public record CreateApiKey(Duration expiration, ActorRef<Result<CreatedApiKey>> replyTo)
      implements Command {}

  public record ListApiKeys(ActorRef<Result<ApiKeyList>> replyTo) implements Command {}

  /** The cluster's members and where its entities are. */
  public record GetClusterStatus(ActorRef<Result<ClusterStatus>> replyTo) implements Command {}

  /** Every relay of the cluster with its load. */
  public record ListRelays(ActorRef<Result<RelayDirectory.RelayList>> replyTo) implements Command {}

  /** The latest network quality of every pair nodes reported. */
  public record GetQuality(ActorRef<Result<QualityHistory.PairList>> replyTo) implements Command {}

  /** One pair's quality history ({@code from} measuring {@code to}) since {@code sinceMillis}. */
  public record GetQualityHistory(
      long from, long to, long sinceMillis, ActorRef<Result<QualityHistory.PointList>> replyTo)
      implements Command {}

  /** Which of these node keys a relay may accept: registered, live nodes. */
  public record LiveNodeKeys(Set<String> nodeKeys, ActorRef<Result<LiveKeys>> replyTo)
      implements Command {}

  public record LiveKeys(Set<String> live) {}

  public record ExpireApiKey(String prefix, ActorRef<Result<ApiKey>> replyTo) implements Command {}

  /** The policy in force (text null: none, everything allowed). */
  public record GetPolicy(ActorRef<Result<PolicyRegistry.Current>> replyTo) implements Command {}

  /** Checks and tests {@code text}, then puts it in force everywhere; INVALID says why not. */
  public record SetPolicy(String text, ActorRef<Result<PolicyRegistry.Current>> replyTo)
      implements Command {}

  /** No policy: everything allowed again. */
  public record ClearPolicy(ActorRef<Result<PolicyRegistry.Current>> replyTo) implements Command {}

  /** The same checks as {@link SetPolicy}, changing nothing. */
  public record CheckPolicy(String text, ActorRef<Result<PolicyAccess.Checked>> replyTo)
      implements Command {}

  /**
   * Which rule lets {@code src} open a connection to {@code dst} ({@code host[:port]}, names or
   * addresses) with {@code proto} (null: tcp), or that none does.
   */
  public record ExplainAccess(
      String src, String dst, String proto, ActorRef<Result<PolicyAccess.Answer>> replyTo)
      implements Command {}

  /** The outcome of a command's asks, answered from inside the actor. */
  private record Done<T>(
      ActorRef<Result<T>> replyTo, Result<T> result, Throwable failure, String what)
      implements Command {}

  // Lists travel wrapped: Result names its value's type, and a bare List would lose its elements'
  // types.

  public record UserList(List<User> users) implements CborSerializable {}

  public record AuthKeyList(List<AuthKey> authKeys) implements CborSerializable {}

  public record NodeList(List<NodeSummary> nodes) implements CborSerializable {}

  public record ApiKeyList(List<ApiKey> apiKeys) implements CborSerializable {}

  /**
   * A node as admins see it: its persisted record (its fields inline in JSON) plus presence from
   * the network map. {@code lastSeen} is null if the node has not connected since the server
   * started.
   */
  public record NodeSummary(
      @JsonUnwrapped NodeRecord node, boolean online, Instant lastSeen, List<String> endpoints)
      implements CborSerializable {

    static NodeSummary of(NodeRecord r, NetworkMap.Presence p) {
      return new NodeSummary(
          r,
          p != null && p.online(),
          p == null ? null : p.lastSeen(),
          p == null ? List.of() : p.endpoints());
    }
  }

  public static Behavior<Command> create(
      ActorRef<UserRegistry.Command> users,
      ActorRef<AuthKeyRegistry.Command> authKeys,
      ActorRef<ApiKeyRegistry.Command> apiKeys,
      ActorRef<AddressAllocator.Command> allocator,
      ActorRef<NodeDirectory.Command> nodes,
      ActorRef<NetworkMap.Command> map,
      ActorRef<PolicyRegistry.Command> policies,
      Clock clock) {
    return Behaviors.setup(
        context ->
            new Admin(context, users, authKeys, apiKeys, allocator, nodes, map, policies, clock));
  }

  private final ActorRef<UserRegistry.Command> users;
  private final ActorRef<AuthKeyRegistry.Command> authKeys;
  private final ActorRef<ApiKeyRegistry.Command> apiKeys;
  private final ActorRef<AddressAllocator.Command> allocator;
  private final ActorRef<NodeDirectory.Command> nodes;
  private final ActorRef<NetworkMap.Command> map;
  private final ActorRef<PolicyRegistry.Command> policies;
  private final Clock clock;

  private Admin(
      ActorContext<Command> context,
      ActorRef<UserRegistry.Command> users,
      ActorRef<AuthKeyRegistry.Command> authKeys,
      ActorRef<ApiKeyRegistry.Command> apiKeys,
      ActorRef<AddressAllocator.Command> allocator,
      ActorRef<NodeDirectory.Command> nodes,
      ActorRef<NetworkMap.Command> map,
      ActorRef<PolicyRegistry.Command> policies,
      Clock clock) {
    super(context);
    this.policies = policies;
    this.users = users;
    this.authKeys = authKeys;
    this.apiKeys = apiKeys;
    this.allocator = allocator;
    this.nodes = nodes;
    this.map = map;
    this.clock = clock;
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder().onMessage(Command.class, this::onCommand).build();
  }

  private Behavior<Command> onCommand(Command command) {
    switch (command) {
      case CreateUser c ->
          run(
              c.replyTo(),
              "create user " + c.name(),
              ask(users, r -> new UserRegistry.CreateUser(c.name(), r)));
      case ListUsers c ->
          run(
              c.replyTo(),
              "list users",
              this.<UserRegistry.Command, List<User>>ask(users, UserRegistry.ListUsers::new)
                  .thenApply(list -> Result.ok(new UserList(list))));
      case DeleteUser c ->
          run(
              c.replyTo(),
              "delete user " + c.name(),
              ask(users, r -> new UserRegistry.DeleteUser(c.name(), r)));
      case CreateAuthKey c ->
          run(c.replyTo(), "create auth key for user " + c.user(), createAuthKey(c));
      case ListAuthKeys c ->
          run(
              c.replyTo(),
              "list auth keys",
              ifUserExists(
                  c.user(),
                  () ->
                      this.<AuthKeyRegistry.Command, List<AuthKey>>ask(
                              authKeys, r -> new AuthKeyRegistry.ListAuthKeys(c.user(), r))
                          .thenApply(list -> Result.ok(new AuthKeyList(list)))));
      case ExpireAuthKey c ->
          run(
              c.replyTo(),
              "expire auth key " + c.id(),
              ask(authKeys, r -> new AuthKeyRegistry.ExpireAuthKey(c.id(), clock.instant(), r)));
      case ListNodes c ->
          run(c.replyTo(), "list nodes", ifUserExists(c.user(), () -> listNodes(c.user())));
      case ExpireNode c ->
          run(
              c.replyTo(),
              "expire node " + c.id(),
              askNode(c.id(), r -> new NodeEntity.Expire(clock.instant(), r)));
      case RenameNode c ->
          run(c.replyTo(), "rename node " + c.id() + " to " + c.newName(), renameNode(c));
      case DeleteNode c -> run(c.replyTo(), "delete node " + c.id(), deleteNode(c));
      case TagNode c -> run(c.replyTo(), "tag node " + c.id() + " " + c.tags(), tagNode(c));
      case CreateApiKey c -> run(c.replyTo(), "create API key", createApiKey(c));
      case ListApiKeys c ->
          run(
              c.replyTo(),
              "list API keys",
              this.<ApiKeyRegistry.Command, List<ApiKey>>ask(
                      apiKeys, ApiKeyRegistry.ListApiKeys::new)
                  .thenApply(list -> Result.ok(new ApiKeyList(list))));
      case ExpireApiKey c ->
          run(
              c.replyTo(),
              "expire API key " + c.prefix(),
              ask(apiKeys, r -> new ApiKeyRegistry.ExpireApiKey(c.prefix(), clock.instant(), r)));
      case LiveNodeKeys c ->
          run(
              c.replyTo(),
              "check node keys",
              this.<NetworkMap.Command, Set<String>>ask(
                      map, r -> new NetworkMap.LiveNodeKeys(c.nodeKeys(), r))
                  .thenApply(live -> Result.ok(new LiveKeys(live))));
      case GetClusterStatus c ->
          run(
              c.replyTo(),
              "cluster status",
              ClusterStatus.collect(getContext().getSystem(), ASK_TIMEOUT.dividedBy(2))
                  .thenApply(Result::ok));
      case GetQuality c ->
          run(
              c.replyTo(),
              "network quality",
              QualityHistory.current(getContext().getSystem(), ASK_TIMEOUT.dividedBy(2))
                  .thenApply(Result::ok));
      case GetQualityHistory c ->
          run(
              c.replyTo(),
              "network quality history",
              QualityHistory.history(
                      getContext().getSystem(),
                      c.from(),
                      c.to(),
                      c.sinceMillis(),
                      ASK_TIMEOUT.dividedBy(2))
                  .thenApply(Result::ok));
      case ListRelays c ->
          run(
              c.replyTo(),
              "list relays",
              RelayDirectory.list(getContext().getSystem(), ASK_TIMEOUT.dividedBy(2))
                  .thenApply(Result::ok));
      case GetPolicy c ->
          run(
              c.replyTo(),
              "check policy",
              this.<PolicyRegistry.Command, PolicyRegistry.Current>ask(
                      policies, PolicyRegistry.GetPolicy::new)
                  .thenApply(Result::ok));
      case SetPolicy c ->
          run(
              c.replyTo(),
              "set policy",
              ask(policies, r -> new PolicyRegistry.SetPolicy(c.text(), r)));
      case ClearPolicy c ->
          run(c.replyTo(), "clear policy", ask(policies, PolicyRegistry.ClearPolicy::new));
      case CheckPolicy c ->
          run(
              c.replyTo(),
              "check policy text",
              CompletableFuture.completedFuture(PolicyAccess.check(c.text())));
      case ExplainAccess c ->
          run(
              c.replyTo(),
              "check access " + c.src() + " -> " + c.dst(),
              this.<PolicyRegistry.Command, PolicyRegistry.Current>ask(
                      policies, PolicyRegistry.GetPolicy::new)
                  .thenCompose(
                      current ->
                          listNodes(null)
                              .thenApply(
                                  list ->
                                      PolicyAccess.explain(
                                          current,
                                          list.orElseThrow().nodes().stream()
                                              .map(NodeSummary::node)
                                              .toList(),
                                          c.src(),
                                          c.dst(),
                                          c.proto()))));
      case Done<?> d -> done(d);
    }
    return this;
  }

  /** What only reads: not logged (the rest is, one line each: who may ask the log what changed). */
  private static final List<String> READ_ONLY = List.of("list ", "check ", "cluster status");

  private <T> void done(Done<T> d) {
    if (d.failure() != null) {
      getContext().getLog().warn("admin: {} failed: {}", d.what(), d.failure().toString());
      d.replyTo()
          .tell(
              Result.rejected(
                  Result.Code.UNAVAILABLE,
                  d.what()
                      + " did not complete in time; the cluster may be recovering a member: try"
                      + " again"));
      return;
    }
    if (READ_ONLY.stream().noneMatch(d.what()::startsWith)) {
      if (d.result() instanceof Result.Rejected<T>(Result.Code code, String message)) {
        getContext().getLog().info("admin: {} refused: {} ({})", d.what(), message, code);
      } else {
        getContext().getLog().info("admin: {}", d.what());
      }
    }
    d.replyTo().tell(d.result());
  }

  private <T> void run(
      ActorRef<Result<T>> replyTo, String what, CompletionStage<Result<T>> outcome) {
    getContext()
        .pipeToSelf(outcome, (result, failure) -> new Done<>(replyTo, result, failure, what));
  }

  private CompletionStage<Result<CreatedAuthKey>> createAuthKey(CreateAuthKey c) {
    if (c.user() == null || c.user().isBlank())
      return rejected(Code.INVALID, "an auth key needs a user");
    Instant expiration;
    try {
      expiration = expiration(c.expiration());
    } catch (IllegalArgumentException e) {
      return rejected(Code.INVALID, e.getMessage());
    }
    return ifUserExists(
        c.user(),
        () ->
            ifTagsAllowed(
                c.user(),
                c.tags(),
                () ->
                    ask(
                        authKeys,
                        r ->
                            new AuthKeyRegistry.CreateAuthKey(
                                c.user(), c.reusable(), c.ephemeral(), expiration, c.tags(), r))));
  }

  private CompletionStage<Result<CreatedApiKey>> createApiKey(CreateApiKey c) {
    Instant expiration;
    try {
      expiration = expiration(c.expiration());
    } catch (IllegalArgumentException e) {
      return rejected(Code.INVALID, e.getMessage());
    }
    return ask(apiKeys, r -> new ApiKeyRegistry.CreateApiKey(expiration, r));
  }

  private Instant expiration(Duration duration) {
    if (duration == null) return null;
    if (duration.isNegative() || duration.isZero()) {
      throw new IllegalArgumentException("expiration must be a positive duration, not " + duration);
    }
    return clock.instant().plus(duration);
  }

  /** Every live node from the allocator's list, each with its presence, in id order. */
  private CompletionStage<Result<NodeList>> listNodes(String user) {
    CompletionStage<Map<Long, NetworkMap.Presence>> presence =
        ask(map, NetworkMap.GetPresence::new);
    CompletionStage<List<NodeRecord>> records =
        this.<AddressAllocator.Command, List<AddressAllocator.Allocation>>ask(
                allocator, AddressAllocator.ListAllocations::new)
            .thenCompose(
                allocations -> {
                  List<CompletableFuture<Optional<NodeRecord>>> gets = new ArrayList<>();
                  for (var a : allocations) {
                    gets.add(
                        this.<Optional<NodeRecord>>askNode(a.nodeId(), NodeEntity.Get::new)
                            .toCompletableFuture());
                  }
                  return CompletableFuture.allOf(gets.toArray(CompletableFuture[]::new))
                      .thenApply(
                          v ->
                              gets.stream()
                                  .map(CompletableFuture::join)
                                  .flatMap(Optional::stream)
                                  .toList());
                });
    return records.thenCombine(
        presence,
        (list, online) ->
            Result.ok(
                new NodeList(
                    list.stream()
                        .filter(r -> user == null || user.equals(r.user()))
                        .sorted(Comparator.comparingLong(NodeRecord::id))
                        .map(r -> NodeSummary.of(r, online.get(r.id())))
                        .toList())));
  }

  /** The allocator approves the name (unique, valid) before the node takes it. */
  private CompletionStage<Result<NodeRecord>> renameNode(RenameNode c) {
    return this.<AddressAllocator.Command, Result<AddressAllocator.Allocation>>ask(
            allocator, r -> new AddressAllocator.Rename(c.id(), c.newName(), r))
        .thenCompose(
            approved ->
                switch (approved) {
                  case Result.Rejected<AddressAllocator.Allocation> no ->
                      CompletableFuture.completedFuture(Result.rejected(no));
                  case Result.Ok<AddressAllocator.Allocation>(var allocation) ->
                      askNode(c.id(), r -> new NodeEntity.Rename(allocation.hostname(), r));
                });
  }

  /** The node stops first, so its freed addresses and name can never be shared with a live node. */
  private CompletionStage<Result<NodeRecord>> deleteNode(DeleteNode c) {
    return this.<Result<NodeRecord>>askNode(c.id(), NodeEntity.Delete::new)
        .thenCompose(
            deleted ->
                switch (deleted) {
                  case Result.Rejected<NodeRecord> no -> CompletableFuture.completedFuture(deleted);
                  case Result.Ok<NodeRecord>(var node) ->
                      this.<AddressAllocator.Command, Result<AddressAllocator.Allocation>>ask(
                              allocator, r -> new AddressAllocator.Release(c.id(), r))
                          .thenApply(
                              released -> {
                                if (released instanceof Result.Rejected<?> no) {
                                  getContext()
                                      .getLog()
                                      .warn(
                                          "Node {} deleted but its allocation was not released: {}",
                                          c.id(),
                                          no.message());
                                }
                                users.tell(
                                    new UserRegistry.DetachNode(
                                        node.user(),
                                        node.id(),
                                        getContext().getSystem().ignoreRef()));
                                return deleted;
                              });
                });
  }

  private CompletionStage<Result<NodeRecord>> tagNode(TagNode c) {
    Set<String> tags = c.tags() == null ? Set.of() : c.tags();
    String bad = Tags.firstInvalid(tags);
    if (bad != null)
      return rejected(
          Code.INVALID, "invalid tag '" + bad + "': tags look like tag:name with a-z 0-9 -");
    return ifTagsAllowed(null, tags, () -> askNode(c.id(), r -> new NodeEntity.SetTags(tags, r)));
  }

  /**
   * Runs {@code then} when no policy is set, or every tag is defined in its tagOwners and (for a
   * key, {@code user} not null) owned by {@code user}; INVALID naming the tag otherwise.
   */
  private <T> CompletionStage<Result<T>> ifTagsAllowed(
      String user, Set<String> tags, Supplier<CompletionStage<Result<T>>> then) {
    if (tags == null || tags.isEmpty()) return then.get();
    return this.<PolicyRegistry.Command, PolicyRegistry.Current>ask(
            policies, PolicyRegistry.GetPolicy::new)
        .thenCompose(
            current -> {
              String refusal = PolicyAccess.tagRefusal(current, user, tags);
              return refusal == null ? then.get() : rejected(Code.INVALID, refusal);
            });
  }

  /**
   * Runs {@code then} if {@code user} is null (meaning all users) or exists; NOT_FOUND otherwise.
   */
  private <T> CompletionStage<Result<T>> ifUserExists(
      String user, Supplier<CompletionStage<Result<T>>> then) {
    if (user == null) return then.get();
    return this.<UserRegistry.Command, Optional<User>>ask(
            users, r -> new UserRegistry.GetUser(user, r))
        .thenCompose(
            found -> found.isPresent() ? then.get() : rejected(Code.NOT_FOUND, "no user " + user));
  }

  private static <T> CompletionStage<Result<T>> rejected(Code code, String message) {
    return CompletableFuture.completedFuture(Result.rejected(code, message));
  }

  private <Req, Res> CompletionStage<Res> ask(
      ActorRef<Req> target, Function<ActorRef<Res>, Req> message) {
    return AskPattern.ask(
        target, message::apply, ASK_TIMEOUT, getContext().getSystem().scheduler());
  }

  private <Res> CompletionStage<Res> askNode(
      long id, Function<ActorRef<Res>, NodeEntity.Command> message) {
    return AskPattern.ask(
        nodes,
        (ActorRef<Res> r) -> new NodeDirectory.Forward(id, message.apply(r)),
        ASK_TIMEOUT,
        getContext().getSystem().scheduler());
  }
}
