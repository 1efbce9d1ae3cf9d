package dev.trellis.control.relay;

import dev.trellis.proto.relay.RelayFrame;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.stream.SharedKillSwitch;
import org.apache.pekko.util.ByteString;

/**
 * One node's relay connection: the handshake (ServerHello, ClientAuth within {@link #AUTH_TIMEOUT},
 * proof check, "is this a live node key?" asked of the network map), registration in the {@link
 * RelayRegistry}, KeepAlives, and the close. Packets never pass through here: once authenticated,
 * the connection's inbound stream forwards them itself ({@link RelayForwarder}).
 */
public final class RelayConnection extends AbstractBehavior<RelayConnection.Command> {
  public static final Duration AUTH_TIMEOUT = Duration.ofSeconds(10);
  public static final Duration KEEP_ALIVE = Duration.ofSeconds(30);
  static final Duration MAP_TIMEOUT = Duration.ofSeconds(5);

  /**
   * After closing, how long the node gets to finish the close handshake before the inbound side is
   * cut.
   */
  static final Duration CLOSE_GRACE = Duration.ofSeconds(5);

  private static final SecureRandom RANDOM = new SecureRandom();

  public sealed interface Command {}

  /** The first frame from the node; the inbound stream waits for the reply before reading more. */
  record Authenticate(ByteString frame, ActorRef<AuthResult> replyTo) implements Command {}

  /** {@code client} is null when refused, with {@code error} saying why. */
  record AuthResult(RelayRegistry.Client client, String error) {}

  /**
   * Close this connection: sent by the registry when the node is gone or a newer connection
   * replaced it.
   */
  public record Close(String reason) implements Command {}

  /** The inbound stream ended: {@code failure} null for a normal close. */
  record StreamEnded(String failure, boolean malformed) implements Command {}

  private record AuthTimedOut() implements Command {}

  private record LiveAnswer(boolean live, String failure) implements Command {}

  private record SendKeepAlive() implements Command {}

  private record GraceOver() implements Command {}

  private static final ByteString KEEP_ALIVE_MESSAGE =
      ByteString.fromArrayUnsafe(new byte[] {RelayFrame.KEEP_ALIVE});
  private static final ByteString READY_MESSAGE =
      ByteString.fromArrayUnsafe(new byte[] {RelayFrame.SERVER_READY});

  private final TimerScheduler<Command> timers;
  private final RelayRegistry registry;
  private final NodeKeyAuthority authority;
  private final RelayMesh mesh;
  private final byte[] relayPrivateKey;
  private final BoundedSourceQueue<ByteString> queue;
  private final SharedKillSwitch killSwitch;
  private final byte[] challenge = new byte[RelayFrame.NONCE_LENGTH];
  private RelayRegistry.Client client;
  private ActorRef<AuthResult> pendingReply;
  private boolean closing;

  private RelayConnection(
      ActorContext<Command> context,
      TimerScheduler<Command> timers,
      RelayRegistry registry,
      NodeKeyAuthority authority,
      RelayMesh mesh,
      byte[] relayPrivateKey,
      byte[] relayPublicKey,
      BoundedSourceQueue<ByteString> queue,
      SharedKillSwitch killSwitch) {
    super(context);
    this.timers = timers;
    this.registry = registry;
    this.authority = authority;
    this.mesh = mesh;
    this.relayPrivateKey = relayPrivateKey;
    this.queue = queue;
    this.killSwitch = killSwitch;
    RANDOM.nextBytes(challenge);
    queue.offer(frame(new RelayFrame.ServerHello(relayPublicKey, challenge)));
    timers.startSingleTimer(new AuthTimedOut(), AUTH_TIMEOUT);
  }

  /**
   * {@code mesh}: the cluster's relay mesh, whose relays may connect to forward packets (null: no
   * mesh).
   */
  static Behavior<Command> create(
      RelayRegistry registry,
      NodeKeyAuthority authority,
      RelayMesh mesh,
      byte[] relayPrivateKey,
      byte[] relayPublicKey,
      BoundedSourceQueue<ByteString> queue,
      SharedKillSwitch killSwitch) {
    return Behaviors.withTimers(
        timers ->
            Behaviors.setup(
                ctx ->
                    new RelayConnection(
                        ctx,
                        timers,
                        registry,
                        authority,
                        mesh,
                        relayPrivateKey,
                        relayPublicKey,
                        queue,
                        killSwitch)));
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(Authenticate.class, this::onAuthenticate)
        .onMessage(LiveAnswer.class, this::onLiveAnswer)
        .onMessage(
            AuthTimedOut.class,
            m -> {
              if (client == null || !client.ready) {
                refuse("no ClientAuth within " + AUTH_TIMEOUT.toSeconds() + " s");
              }
              return this;
            })
        .onMessage(
            SendKeepAlive.class,
            m -> {
              if (!closing) {
                queue.offer(KEEP_ALIVE_MESSAGE);
              }
              return this;
            })
        .onMessage(
            Close.class,
            m -> {
              close(m.reason());
              return this;
            })
        .onMessage(StreamEnded.class, this::onStreamEnded)
        .onMessage(
            GraceOver.class,
            m -> {
              killSwitch.shutdown();
              return Behaviors.stopped();
            })
        .build();
  }

  private Behavior<Command> onAuthenticate(Authenticate message) {
    if (closing || pendingReply != null) {
      message.replyTo().tell(new AuthResult(null, "connection is closing"));
      return this;
    }
    pendingReply = message.replyTo();
    RelayFrame.ClientAuth auth;
    try {
      RelayFrame.Frame frame = RelayFrame.parse(message.frame().toArray());
      if (!(frame instanceof RelayFrame.ClientAuth a)) {
        registry.malformed.increment();
        refuse("expected ClientAuth, got " + frame.getClass().getSimpleName());
        return this;
      }
      auth = a;
    } catch (RelayFrame.FormatException e) {
      registry.malformed.increment();
      refuse("malformed ClientAuth: " + e.getMessage());
      return this;
    }
    if (!RelayFrame.verify(relayPrivateKey, challenge, auth)) {
      refuse("authentication failed: the proof does not match the node key");
      return this;
    }
    client = new RelayRegistry.Client(RelayKey.of(auth.nodeKey()), queue, getContext().getSelf());
    // Another relay of the cluster proved it holds its relay key: it may forward its nodes' packets
    // here.
    client.mesh = mesh != null && mesh.isPeerRelay(client.key);
    // Registered (not yet ready) before asking the map, so a NodeKeyGone for this key that the
    // map sends after answering "live" finds this connection and closes it.
    RelayRegistry.Client previous = registry.register(client);
    if (previous != null) {
      previous.connection.tell(new Close("replaced by a newer connection of the same node"));
    }
    if (client.mesh) {
      return onLiveAnswer(new LiveAnswer(true, null));
    }
    String key = client.key.base64();
    getContext()
        .pipeToSelf(
            authority
                .isLive(key)
                .toCompletableFuture()
                .orTimeout(MAP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS),
            (live, failure) ->
                new LiveAnswer(
                    Boolean.TRUE.equals(live), failure == null ? null : failure.getMessage()));
    return this;
  }

  private Behavior<Command> onLiveAnswer(LiveAnswer answer) {
    if (closing || pendingReply == null) {
      return this;
    }
    if (!answer.live()) {
      refuse(
          answer.failure() != null
              ? "cannot check the node key: " + answer.failure()
              : "node key is not registered with this server, or has expired");
      return this;
    }
    timers.cancel(AuthTimedOut.class);
    registry.ready(client);
    queue.offer(READY_MESSAGE);
    registry.accepted.increment();
    timers.startTimerWithFixedDelay(new SendKeepAlive(), KEEP_ALIVE);
    getContext()
        .getLog()
        .debug(
            client.mesh ? "relay: relay {} linked for the mesh" : "relay: node {} connected",
            client.key);
    pendingReply.tell(new AuthResult(client, null));
    pendingReply = null;
    return this;
  }

  private Behavior<Command> onStreamEnded(StreamEnded ended) {
    if (ended.malformed()) {
      registry.malformed.increment();
    }
    close(ended.failure());
    // Nothing more can arrive; the outbound side drains what is queued on its own.
    return Behaviors.stopped();
  }

  private void refuse(String reason) {
    if (closing) {
      return;
    }
    registry.refused.increment();
    getContext().getLog().debug("relay: refused a connection: {}", reason);
    close(reason);
  }

  /** Error(reason) if there is one, then the close; the registry forgets this connection. */
  private void close(String reason) {
    if (closing) {
      return;
    }
    closing = true;
    if (pendingReply != null) {
      pendingReply.tell(new AuthResult(null, reason == null ? "closed" : reason));
      pendingReply = null;
    }
    if (client != null) {
      registry.unregister(client);
      client.ready = false;
    }
    timers.cancelAll();
    if (reason != null) {
      queue.offer(
          frame(new RelayFrame.Error(reason.length() > 1000 ? reason.substring(0, 1000) : reason)));
    }
    queue.complete();
    timers.startSingleTimer(new GraceOver(), CLOSE_GRACE);
  }

  static ByteString frame(RelayFrame.Frame frame) {
    return ByteString.fromArrayUnsafe(RelayFrame.encode(frame));
  }
}
