package dev.trellis.control.session;

import dev.trellis.control.Result;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.cluster.StandIn;
import dev.trellis.control.map.NetworkMap;
import dev.trellis.control.metrics.ServerMetrics;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.quality.QualityHistory;
import dev.trellis.control.relay.RelaySettings;
import dev.trellis.control.user.User;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.proto.control.ControlChannel;
import dev.trellis.proto.control.ControlHandshake;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import java.io.IOException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import java.util.function.LongFunction;
import java.util.regex.Pattern;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.BehaviorInterceptor;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.Signal;
import org.apache.pekko.actor.typed.TypedActorContext;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * One node's control connection: the Noise handshake, the login (registration with an auth key, or
 * resumption by machine key), then the live map from {@link NetworkMap} until either side ends it.
 * States: awaiting handshake → awaiting login → logging in → active.
 */
public final class ControlSession {
  /** What a relay region name may look like (the admin picks them; nodes echo them back). */
  static final Pattern RELAY_REGION = RelaySettings.REGION;

  static final Duration HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);

  public sealed interface Command {}

  /** One whole binary WebSocket message from the node. */
  public record Inbound(byte[] bytes) implements Command {}

  public record StreamClosed() implements Command {}

  public record StreamFailed(Throwable cause) implements Command {}

  private record FromMap(NetworkMap.SessionOutput output) implements Command {}

  private record LoginDone(ControlMessage.Login login, NodeRecord record, String code, String error)
      implements Command {}

  private record HandshakeTimeout() implements Command {}

  private record NodeKeyRotated(Result<NodeRecord> result) implements Command {}

  private record LoggedOut() implements Command {}

  /** To the WebSocket: a message to send, or the end of the stream. */
  public sealed interface Outbound {}

  public record Frame(byte[] bytes) implements Outbound {}

  public record Close() implements Outbound {}

  /**
   * The cluster-wide entities a login needs, each asked through {@link StandIn} so a login does not
   * wait for an entity on a lost member to move.
   */
  public record Registries(
      StandIn standIn,
      StandIn.Target<AuthKeyRegistry.Command> authKeys,
      StandIn.Target<UserRegistry.Command> users,
      StandIn.Target<AddressAllocator.Command> allocator,
      LongFunction<StandIn.Target<NodeEntity.Command>> node) {}

  /** What a session talks to. */
  public record Services(
      ControlHandshake.Server handshake,
      Registries registries,
      ActorRef<NetworkMap.Command> map,
      Clock clock,
      ServerMetrics metrics,
      ActorRef<QualityHistory.Command> quality) {}

  private final ActorContext<Command> context;
  private final Services services;
  private final ActorRef<Outbound> out;
  private final ActorRef<NetworkMap.SessionOutput> mapAdapter;
  private ControlChannel channel;
  private String machineKey;
  private long nodeId = -1;

  private ControlSession(ActorContext<Command> context, Services services, ActorRef<Outbound> out) {
    this.context = context;
    this.services = services;
    this.out = out;
    this.mapAdapter = context.messageAdapter(NetworkMap.SessionOutput.class, FromMap::new);
  }

  public static Behavior<Command> create(Services services, ActorRef<Outbound> out) {
    return Behaviors.setup(
        ctx ->
            Behaviors.withTimers(
                timers -> {
                  timers.startSingleTimer(new HandshakeTimeout(), HANDSHAKE_TIMEOUT);
                  services.metrics().sessionOpened();
                  return Behaviors.intercept(
                      () -> new CountedUntilStopped(services.metrics()),
                      new ControlSession(ctx, services, out).awaitingHandshake());
                }));
  }

  /** Counts the session closed when it stops, in whichever state it stops. */
  private static final class CountedUntilStopped extends BehaviorInterceptor<Command, Command> {
    private final ServerMetrics metrics;

    CountedUntilStopped(ServerMetrics metrics) {
      super(Command.class);
      this.metrics = metrics;
    }

    @Override
    public Behavior<Command> aroundReceive(
        TypedActorContext<Command> ctx, Command msg, ReceiveTarget<Command> target) {
      return target.apply(ctx, msg);
    }

    @Override
    public Behavior<Command> aroundSignal(
        TypedActorContext<Command> ctx, Signal signal, SignalTarget<Command> target) {
      if (signal instanceof PostStop) {
        metrics.sessionClosed();
      }
      return target.apply(ctx, signal);
    }
  }

  // ---- states ------------------------------------------------------------------------------

  private Behavior<Command> awaitingHandshake() {
    return Behaviors.receive(Command.class)
        .onMessage(
            Inbound.class,
            m -> {
              ControlHandshake.Accepted accepted = services.handshake().accept(m.bytes());
              if (accepted == null) {
                return close("control handshake rejected");
              }
              channel = accepted.channel();
              machineKey = Base64.getEncoder().encodeToString(accepted.machineKey());
              out.tell(new Frame(accepted.response()));
              return awaitingLogin();
            })
        .onMessage(HandshakeTimeout.class, m -> close("no control handshake in time"))
        .onMessage(StreamClosed.class, m -> streamEnded())
        .onMessage(StreamFailed.class, m -> streamEnded())
        .onMessage(FromMap.class, m -> Behaviors.same())
        .build();
  }

  private Behavior<Command> awaitingLogin() {
    return Behaviors.receive(Command.class)
        .onMessage(
            Inbound.class,
            m -> {
              ControlMessage message = open(m.bytes());
              if (!(message instanceof ControlMessage.Login login)) {
                return close(
                    message == null
                        ? "undecipherable control message"
                        : "expected login, got " + message.getClass().getSimpleName());
              }
              String problem = validate(login);
              if (problem != null) {
                send(ControlMessage.LoginResult.failure("INVALID", problem));
                return close(problem);
              }
              context.pipeToSelf(
                  login(login),
                  (done, failure) -> failure == null ? done : unavailable(login, failure));
              return loggingIn();
            })
        .onMessage(HandshakeTimeout.class, m -> close("no login in time"))
        .onMessage(StreamClosed.class, m -> streamEnded())
        .onMessage(StreamFailed.class, m -> streamEnded())
        .onMessage(FromMap.class, m -> Behaviors.same())
        .build();
  }

  private Behavior<Command> loggingIn() {
    return Behaviors.receive(Command.class)
        .onMessage(
            LoginDone.class,
            done -> {
              if (done.record() == null) {
                context
                    .getLog()
                    .info(
                        "login refused: machine {} as {}: {} ({})",
                        shortKey(machineKey),
                        done.login().hostname(),
                        done.error(),
                        done.code());
                services.metrics().login("refused");
                send(ControlMessage.LoginResult.failure(done.code(), done.error()));
                return close("login failed: " + done.error());
              }
              context
                  .getLog()
                  .info(
                      "login: {} (node {}, user {}{}) {}",
                      done.record().hostname(),
                      done.record().id(),
                      done.record().user(),
                      done.record().tags().isEmpty() ? "" : ", tags " + done.record().tags(),
                      done.login().authKey() == null || done.login().authKey().isBlank()
                          ? "resumed its registration"
                          : "registered with an auth key");
              services
                  .metrics()
                  .login(
                      done.login().authKey() == null || done.login().authKey().isBlank()
                          ? "reauthenticated"
                          : "registered");
              nodeId = done.record().id();
              List<String> endpoints = endpoints(done.login().endpoints());
              send(ControlMessage.LoginResult.success(selfInfo(done.record(), endpoints)));
              services.map().tell(new NetworkMap.Connect(done.record(), mapAdapter, endpoints));
              return active();
            })
        .onMessage(Inbound.class, m -> close("message before the login finished"))
        .onMessage(HandshakeTimeout.class, m -> Behaviors.same())
        .onMessage(StreamClosed.class, m -> streamEnded())
        .onMessage(StreamFailed.class, m -> streamEnded())
        .onMessage(FromMap.class, m -> Behaviors.same())
        .build();
  }

  private Behavior<Command> active() {
    return Behaviors.receive(Command.class)
        .onMessage(Inbound.class, m -> onActiveMessage(open(m.bytes())))
        .onMessage(
            FromMap.class,
            m ->
                switch (m.output()) {
                  case NetworkMap.SendEncoded(byte[] json) -> {
                    out.tell(new Frame(channel.seal(json)));
                    yield Behaviors.same();
                  }
                  case NetworkMap.Evict(String reason) -> {
                    send(new ControlMessage.Goodbye(reason));
                    nodeId = -1; // the map already forgot this session
                    yield close(reason);
                  }
                })
        .onMessage(NodeKeyRotated.class, m -> Behaviors.same())
        .onMessage(
            LoggedOut.class,
            m -> {
              send(new ControlMessage.Goodbye("logged out"));
              return close("logged out");
            })
        .onMessage(HandshakeTimeout.class, m -> Behaviors.same())
        .onMessage(StreamClosed.class, m -> disconnected())
        .onMessage(StreamFailed.class, m -> disconnected())
        .build();
  }

  private Behavior<Command> onActiveMessage(ControlMessage message) {
    switch (message) {
      case null -> {
        return close("undecipherable control message");
      }
      case ControlMessage.Ping ping -> send(new ControlMessage.Pong(ping.id()));
      case ControlMessage.UpdateEndpoints update -> {
        String home = update.homeRelay();
        if (home != null && !RELAY_REGION.matcher(home).matches()) {
          return close("invalid relay region (1-64 letters, digits, '.', '_' or '-')");
        }
        services
            .map()
            .tell(
                new NetworkMap.UpdateEndpoints(
                    nodeId, endpoints(update.endpoints()), home, update.multicast()));
      }
      case ControlMessage.RotateNodeKey rotate -> {
        if (!validKey(rotate.nodeKey())) {
          return close("invalid node key");
        }
        context.pipeToSelf(
            this.<Result<NodeRecord>>askNode(
                nodeId, r -> new NodeEntity.RotateNodeKey(rotate.nodeKey(), r)),
            (result, failure) -> new NodeKeyRotated(result));
      }
      case ControlMessage.QualityReport report -> {
        String refused = QualityHistory.problem(report);
        if (refused != null) {
          return close("invalid quality report: " + refused);
        }
        services
            .quality()
            .tell(new QualityHistory.Report(nodeId, report.peers(), services.clock().millis()));
      }
      case ControlMessage.Logout logout ->
          context.pipeToSelf(
              this.<Result<NodeRecord>>askNode(nodeId, NodeEntity.Logout::new),
              (result, failure) -> new LoggedOut());
      default -> {
        return close("unexpected " + message.getClass().getSimpleName() + " from a node");
      }
    }
    return Behaviors.same();
  }

  private Behavior<Command> disconnected() {
    if (nodeId >= 0) {
      services.map().tell(new NetworkMap.Disconnect(nodeId, mapAdapter));
    }
    return streamEnded();
  }

  /** The node's side ended: end ours too, so the WebSocket finishes closing. */
  private Behavior<Command> streamEnded() {
    out.tell(new Close());
    return Behaviors.stopped();
  }

  private Behavior<Command> close(String reason) {
    context.getLog().debug("closing control session of {}: {}", machineKey, reason);
    if (nodeId >= 0) {
      services.map().tell(new NetworkMap.Disconnect(nodeId, mapAdapter));
    }
    out.tell(new Close());
    return Behaviors.stopped();
  }

  // ---- login -------------------------------------------------------------------------------

  private static String validate(ControlMessage.Login login) {
    if (!validKey(login.nodeKey())) {
      return "node key must be the base64 of 32 bytes";
    }
    if (login.hostname() != null && login.hostname().length() > 255) {
      return "hostname too long";
    }
    if (login.authKey() != null && login.authKey().length() > 200) {
      return "auth key too long";
    }
    if (login.endpoints() != null && login.endpoints().size() > 64) {
      return "too many endpoints";
    }
    return null;
  }

  static boolean validKey(String key) {
    if (key == null || key.length() != 44) {
      return false;
    }
    try {
      return Base64.getDecoder().decode(key).length == 32;
    } catch (IllegalArgumentException e) {
      return false;
    }
  }

  /** Keeps only well-formed "ip:port" / "[ip]:port" endpoints. */
  static List<String> endpoints(List<String> reported) {
    List<String> out = new ArrayList<>();
    if (reported == null) {
      return out;
    }
    for (String e : reported) {
      if (e != null
          && e.length() <= 64
          && e.matches("(\\d{1,3}(\\.\\d{1,3}){3}|\\[[0-9a-fA-F:.]+\\]):\\d{1,5}")) {
        out.add(e);
      }
    }
    return out;
  }

  private CompletionStage<LoginDone> login(ControlMessage.Login login) {
    return login.authKey() == null || login.authKey().isBlank() ? resume(login) : register(login);
  }

  private CompletionStage<LoginDone> register(ControlMessage.Login login) {
    var now = services.clock().instant();
    String hostname =
        login.hostname() == null || login.hostname().isBlank() ? "node" : login.hostname();
    return ask(
            services.registries().authKeys(),
            (ActorRef<Result<AuthKeyRegistry.AuthKeyGrant>> r) ->
                new AuthKeyRegistry.UseAuthKey(login.authKey().trim(), machineKey, now, r))
        .thenCompose(
            grantResult ->
                switch (grantResult) {
                  case Result.Rejected<AuthKeyRegistry.AuthKeyGrant> rejected ->
                      CompletableFuture.completedStage(
                          failed(
                              login,
                              rejected.code().name(),
                              "auth key refused: " + rejected.message()));
                  case Result.Ok<AuthKeyRegistry.AuthKeyGrant>(
                          AuthKeyRegistry.AuthKeyGrant grant) ->
                      ask(
                              services.registries().users(),
                              (ActorRef<Optional<User>> r) ->
                                  new UserRegistry.GetUser(grant.user(), r))
                          .thenCompose(
                              user ->
                                  user.isEmpty()
                                      ? CompletableFuture.completedStage(
                                          failed(
                                              login,
                                              "NOT_FOUND",
                                              "the auth key's user "
                                                  + grant.user()
                                                  + " no longer exists"))
                                      : allocateAndRegister(login, grant, hostname));
                });
  }

  private CompletionStage<LoginDone> allocateAndRegister(
      ControlMessage.Login login, AuthKeyRegistry.AuthKeyGrant grant, String hostname) {
    return ask(
            services.registries().allocator(),
            (ActorRef<Result<AddressAllocator.Allocation>> r) ->
                new AddressAllocator.Allocate(machineKey, hostname, r))
        .thenCompose(
            allocated ->
                switch (allocated) {
                  case Result.Rejected<AddressAllocator.Allocation> rejected ->
                      CompletableFuture.completedStage(
                          failed(login, rejected.code().name(), rejected.message()));
                  case Result.Ok<AddressAllocator.Allocation>(AddressAllocator.Allocation a) ->
                      askNode(
                              a.nodeId(),
                              (ActorRef<Optional<NodeRecord>> r) -> new NodeEntity.Get(r))
                          .thenCompose(previous -> registerNode(login, grant, a, previous));
                });
  }

  private CompletionStage<LoginDone> registerNode(
      ControlMessage.Login login,
      AuthKeyRegistry.AuthKeyGrant grant,
      AddressAllocator.Allocation a,
      Optional<NodeRecord> previous) {
    var now = services.clock().instant();
    return askNode(
            a.nodeId(),
            (ActorRef<Result<NodeRecord>> r) ->
                new NodeEntity.Register(
                    machineKey,
                    login.nodeKey(),
                    grant.user(),
                    a.hostname(),
                    a.ipv4(),
                    a.ipv6(),
                    grant.tags(),
                    grant.ephemeral(),
                    null,
                    now,
                    r))
        .thenCompose(
            registered ->
                switch (registered) {
                  case Result.Rejected<NodeRecord> rejected ->
                      CompletableFuture.completedStage(
                          failed(login, rejected.code().name(), rejected.message()));
                  case Result.Ok<NodeRecord>(NodeRecord record) ->
                      attachToUser(record, previous)
                          .thenApply(done -> new LoginDone(login, record, null, null));
                });
  }

  /**
   * The user's list of nodes follows the node before the login is answered: a user with nodes
   * cannot be deleted, and a node that moved to another user leaves the old one's list.
   */
  private CompletionStage<Done> attachToUser(NodeRecord record, Optional<NodeRecord> previous) {
    CompletionStage<Done> detached =
        previous
            .filter(p -> !p.user().equals(record.user()))
            .map(
                p ->
                    ask(
                        services.registries().users(),
                        (ActorRef<Done> r) -> new UserRegistry.DetachNode(p.user(), p.id(), r)))
            .orElse(CompletableFuture.completedStage(Done.getInstance()));
    return detached.thenCompose(
        d ->
            ask(
                services.registries().users(),
                (ActorRef<Done> r) -> new UserRegistry.AttachNode(record.user(), record.id(), r)));
  }

  private CompletionStage<LoginDone> resume(ControlMessage.Login login) {
    var now = services.clock().instant();
    return ask(
            services.registries().allocator(),
            (ActorRef<Optional<AddressAllocator.Allocation>> r) ->
                new AddressAllocator.FindByMachineKey(machineKey, r))
        .thenCompose(
            found ->
                found.isEmpty()
                    ? CompletableFuture.completedStage(
                        failed(
                            login,
                            "NEEDS_AUTH",
                            "this machine is not registered: log in with an auth key"))
                    : askNode(
                            found.get().nodeId(),
                            (ActorRef<Optional<NodeRecord>> r) -> new NodeEntity.Get(r))
                        .thenCompose(
                            record -> {
                              if (record.isEmpty() || !record.get().live(now)) {
                                return CompletableFuture.completedStage(
                                    failed(
                                        login,
                                        "NEEDS_AUTH",
                                        "this machine's registration has expired or was logged out: log in with an auth key"));
                              }
                              if (record.get().nodeKey().equals(login.nodeKey())) {
                                return CompletableFuture.completedStage(
                                    new LoginDone(login, record.get(), null, null));
                              }
                              // The machine key authenticated the session; a new node key is a
                              // rotation.
                              return askNode(
                                      record.get().id(),
                                      (ActorRef<Result<NodeRecord>> r) ->
                                          new NodeEntity.RotateNodeKey(login.nodeKey(), r))
                                  .thenApply(
                                      rotated ->
                                          rotated
                                                  instanceof
                                                  Result.Ok<NodeRecord>(NodeRecord updated)
                                              ? new LoginDone(login, updated, null, null)
                                              : failed(
                                                  login, "INVALID", "node key rotation refused"));
                            }));
  }

  /**
   * The login could not finish (an entity it needs did not answer in time, e.g. while the cluster
   * moves it off a lost member): the node retries; the detail is for the server's log only.
   */
  private LoginDone unavailable(ControlMessage.Login login, Throwable failure) {
    context
        .getLog()
        .warn(
            "login of machine {} as {} could not complete: {}",
            shortKey(machineKey),
            login.hostname(),
            failure.toString());
    return failed(
        login,
        "UNAVAILABLE",
        "the server could not complete the login right now (part of the cluster is not"
            + " answering yet); the node retries");
  }

  /** The first characters of a public key, enough to tell machines apart in a log line. */
  static String shortKey(String key) {
    return key == null ? "?" : key.substring(0, Math.min(8, key.length()));
  }

  private static LoginDone failed(ControlMessage.Login login, String code, String error) {
    return new LoginDone(login, null, code, error);
  }

  private <C, R> CompletionStage<R> ask(
      StandIn.Target<C> target, Function<ActorRef<R>, C> message) {
    return services.registries().standIn().ask(target, message);
  }

  private <R> CompletionStage<R> askNode(
      long id, Function<ActorRef<R>, NodeEntity.Command> message) {
    return ask(services.registries().node().apply(id), message);
  }

  private static ControlMessage.NodeInfo selfInfo(NodeRecord record, List<String> endpoints) {
    List<String> addresses = new ArrayList<>();
    if (record.ipv4() != null) addresses.add(record.ipv4());
    if (record.ipv6() != null) addresses.add(record.ipv6());
    return new ControlMessage.NodeInfo(
        record.id(),
        record.hostname(),
        record.user(),
        record.nodeKey(),
        addresses,
        endpoints,
        true,
        null,
        record.tags(),
        record.expiry(),
        record.ephemeral());
  }

  // ---- channel -----------------------------------------------------------------------------

  private void send(ControlMessage message) {
    out.tell(new Frame(channel.seal(ControlJson.encode(message))));
  }

  /** The decrypted message, or null when it does not authenticate or parse. */
  private ControlMessage open(byte[] sealed) {
    try {
      return ControlJson.decode(channel.open(sealed));
    } catch (ControlChannel.ChannelException | IOException e) {
      context.getLog().info("bad control message from {}: {}", machineKey, e.getMessage());
      return null;
    }
  }
}
