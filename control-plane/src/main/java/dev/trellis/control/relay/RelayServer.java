package dev.trellis.control.relay;

import com.fasterxml.jackson.core.JsonProcessingException;
import dev.trellis.control.map.NetworkMap;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.relay.RelayFrame;
import dev.trellis.proto.wireguard.Curve25519;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.Base64;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.Done;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.ws.BinaryMessage;
import org.apache.pekko.http.javadsl.model.ws.Message;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.stream.KillSwitches;
import org.apache.pekko.stream.SharedKillSwitch;
import org.apache.pekko.stream.StreamLimitReachedException;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.stream.javadsl.Framing;
import org.apache.pekko.stream.javadsl.Keep;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.util.ByteString;

/**
 * The relay at {@code GET /relay}: carries WireGuard packets between nodes over a WebSocket when
 * UDP between them is blocked. Frame format and handshake: {@link RelayFrame}. Each connection is a
 * {@link RelayConnection} actor for its lifecycle and a stream that forwards packets straight into
 * the destination's bounded queue ({@link RelayRegistry}). Node keys that stop being live in the
 * {@link NetworkMap} (expired, logged out, deleted, re-keyed) lose their relay connection.
 *
 * <p>The relay's static key is the server's key (the one {@code GET /key} returns), so a node can
 * check the ServerHello against it.
 *
 * <p>Threads: the connection streams (Pekko HTTP's) share the registry, a concurrent structure;
 * each connection's lifecycle state is its {@link RelayConnection} actor's; {@code mesh} is set
 * once, by whoever wires the server, before connections arrive.
 */
public final class RelayServer extends AllDirectives {
  private static final CompletionStage<Done> DONE =
      CompletableFuture.completedStage(Done.getInstance());
  private static final Duration AUTH_ASK_TIMEOUT =
      RelayConnection.AUTH_TIMEOUT.plus(RelayConnection.MAP_TIMEOUT).plusSeconds(1);

  private final ActorSystem<?> system;
  private final RelaySettings settings;
  private final NodeKeyAuthority authority;
  private final byte[] privateKey;
  private final byte[] publicKey;
  private final RelayRegistry registry;
  private final AtomicLong connections = new AtomicLong();
  private volatile RelayMesh mesh;

  /**
   * The relay embedded in {@code trellis server}, admitting the keys its network map knows as live.
   */
  public RelayServer(
      ActorSystem<?> system,
      RelaySettings settings,
      byte[] privateKey,
      ActorRef<NetworkMap.Command> map) {
    this(
        system,
        settings,
        privateKey,
        NodeKeyAuthority.of(system, map, RelayConnection.MAP_TIMEOUT));
  }

  public RelayServer(
      ActorSystem<?> system,
      RelaySettings settings,
      byte[] privateKey,
      NodeKeyAuthority authority) {
    this.system = system;
    this.settings = settings;
    this.authority = authority;
    this.privateKey = privateKey.clone();
    this.publicKey = Curve25519.publicKey(privateKey);
    this.registry = new RelayRegistry(settings.region());
    authority.watch(registry);
  }

  /**
   * Tells every connected node the relay is going away on purpose: reconnect in about {@code
   * reconnectIn}, and keep trying for {@code tryFor}. Called just before a clean shutdown.
   */
  public void announceRestart(Duration reconnectIn, Duration tryFor) {
    registry.broadcast(new RelayFrame.Restarting(reconnectIn.toMillis(), tryFor.toMillis()));
  }

  /**
   * Joins this relay to the cluster's relay mesh (a relay of {@code trellis server} in a cluster),
   * its bookkeeping actor a child of {@code parent}. Call before the route serves connections.
   */
  public RelayMesh startMesh(ActorContext<?> parent) {
    RelayMesh m =
        new RelayMesh(registry, privateKey, Base64.getEncoder().encodeToString(publicKey))
            .start(parent);
    mesh = m;
    return m;
  }

  /** The mesh this relay is part of, or null. */
  public RelayMesh mesh() {
    return mesh;
  }

  public RelayRegistry registry() {
    return registry;
  }

  public RelaySettings settings() {
    return settings;
  }

  /**
   * {@code GET /relay}: with {@code Upgrade: trellis-relay} the raw transport (length-prefixed
   * frames on the upgraded TCP connection), otherwise a WebSocket.
   */
  public Route route() {
    return concat(
        // How many nodes this relay holds: a node choosing among the relays of its region takes the
        // least loaded.
        path(
            PathMatchers.segment("relay").slash("load"),
            () ->
                get(
                    () ->
                        complete(
                            HttpResponse.create()
                                .withEntity(
                                    HttpEntities.create(
                                        ContentTypes.APPLICATION_JSON,
                                        "{\"region\":"
                                            + jsonString(settings.region())
                                            + ",\"connectedNodes\":"
                                            + registry.stats().connected()
                                            + "}"))))),
        path(
            "relay",
            () ->
                get(
                    () ->
                        optionalHeaderValueByName(
                            "Upgrade",
                            upgrade -> {
                              if (upgrade.isPresent()
                                  && upgrade
                                      .get()
                                      .strip()
                                      .equalsIgnoreCase(RelayFrame.RAW_UPGRADE)) {
                                return complete(rawUpgrade());
                              }
                              return extractWebSocketUpgrade(
                                  ws -> complete(ws.handleMessagesWith(newConnection())));
                            }))));
  }

  private static String jsonString(String s) {
    try {
      return ControlJson.MAPPER.writeValueAsString(s);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The handler of one WebSocket: one frame per binary message. */
  public Flow<Message, Message, NotUsed> newConnection() {
    return Flow.<Message>create()
        .flatMapConcat(this::whole)
        .via(newFrameConnection())
        .map(frame -> (Message) BinaryMessage.create(frame));
  }

  /** 101 Switching Protocols, after which the connection carries {@link #newRawConnection()}. */
  private HttpResponse rawUpgrade() {
    return RawUpgrade.switchingProtocols(RelayFrame.RAW_UPGRADE, newRawConnection());
  }

  /** The raw transport: each frame preceded by its length (4 bytes, big-endian). */
  public Flow<ByteString, ByteString, NotUsed> newRawConnection() {
    return Flow.<ByteString>create()
        .via(
            Framing.lengthField(
                RelayFrame.RAW_LENGTH_FIELD,
                0,
                RelayFrame.MAX_FRAME + RelayFrame.RAW_LENGTH_FIELD,
                ByteOrder.BIG_ENDIAN))
        .map(b -> b.drop(RelayFrame.RAW_LENGTH_FIELD))
        .via(newFrameConnection())
        .map(RelayServer::lengthPrefixed);
  }

  private static ByteString lengthPrefixed(ByteString frame) {
    int n = frame.size();
    return ByteString.fromArrayUnsafe(
            new byte[] {(byte) (n >>> 24), (byte) (n >>> 16), (byte) (n >>> 8), (byte) n})
        .concat(frame);
  }

  /**
   * One connection whatever the transport: whole frames in (the handshake, then the forwarder), the
   * queue out.
   *
   * <p>The outbound queue is materialized inside the connection's own stream (not pre-materialized
   * in a graph of its own): a frame offered by a sender's stream then wakes this connection's
   * interpreter once, instead of a second interpreter that hands it on through a
   * publisher/subscriber bridge (two more actor hops per packet, and one more on every demand). The
   * connection actor is created when that queue exists, during materialization, so before any
   * inbound frame can reach {@link #inbound}.
   */
  private Flow<ByteString, ByteString, NotUsed> newFrameConnection() {
    long id = connections.incrementAndGet();
    SharedKillSwitch killSwitch = KillSwitches.shared("relay-" + id);
    AtomicReference<ActorRef<RelayConnection.Command>> connection = new AtomicReference<>();
    AtomicReference<RelayForwarder> forwarder = new AtomicReference<>();
    Sink<ByteString, NotUsed> in =
        Flow.<ByteString>create()
            .via(killSwitch.flow())
            .mapAsync(1, frame -> inbound(frame, connection.get(), forwarder))
            .toMat(Sink.ignore(), Keep.right())
            .mapMaterializedValue(
                done -> {
                  done.whenComplete(
                      (d, e) -> {
                        ActorRef<RelayConnection.Command> c = connection.get();
                        if (c != null) {
                          c.tell(ended(e));
                        }
                      });
                  return NotUsed.getInstance();
                });
    Source<ByteString, NotUsed> out =
        Source.<ByteString>queue(settings.maxQueue())
            .mapMaterializedValue(
                queue -> {
                  connection.set(
                      system.systemActorOf(
                          RelayConnection.create(
                              registry, authority, mesh, privateKey, publicKey, queue, killSwitch),
                          "relay-connection-" + id,
                          Props.empty()));
                  return NotUsed.getInstance();
                })
            .statefulMap(() -> NO_SOURCE, RelayServer::sameSource, last -> Optional.empty());
    // Not coupled (see ControlRoute): when the connection closes its queue, the queued frames
    // (an Error) still go out before the close.
    return Flow.fromSinkAndSource(in, out);
  }

  private static final ByteString NO_SOURCE = ByteString.emptyByteString();
  private static final ByteString RECV_SAME =
      ByteString.fromArrayUnsafe(new byte[] {RelayFrame.RECV_SAME});

  /**
   * RecvPacket from the same source as the previous one on this connection becomes RecvSame (the
   * key is not repeated).
   */
  private static Pair<ByteString, ByteString> sameSource(ByteString lastSource, ByteString frame) {
    if (frame.size() <= RelayFrame.PACKET_HEADER || frame.apply(0) != RelayFrame.RECV_PACKET) {
      return Pair.create(lastSource, frame);
    }
    ByteString source = frame.slice(1, RelayFrame.PACKET_HEADER);
    if (source.equals(lastSource)) {
      return Pair.create(lastSource, RECV_SAME.concat(frame.drop(RelayFrame.PACKET_HEADER)));
    }
    return Pair.create(source, frame);
  }

  /**
   * Once authenticated, forwards in place; before, the first frame is the handshake and the stream
   * waits for it.
   */
  private CompletionStage<Done> inbound(
      ByteString frame,
      ActorRef<RelayConnection.Command> connection,
      AtomicReference<RelayForwarder> forwarder)
      throws RelayFrame.FormatException {
    RelayForwarder f = forwarder.get();
    if (f != null) {
      f.onFrame(frame);
      return DONE;
    }
    CompletionStage<RelayConnection.AuthResult> auth =
        AskPattern.ask(
            connection,
            replyTo -> new RelayConnection.Authenticate(frame, replyTo),
            AUTH_ASK_TIMEOUT,
            system.scheduler());
    return auth.thenApply(
        result -> {
          if (result.client() == null) {
            throw new CompletionException(new Refused(result.error()));
          }
          forwarder.set(new RelayForwarder(registry, result.client(), mesh));
          return Done.getInstance();
        });
  }

  /**
   * A whole binary message as a one-element source; text or more than {@link RelayFrame#MAX_FRAME}
   * bytes fail the stream. Pieces of a streamed message are joined inside this stream (no separate
   * materialization per message: that cost more than the forwarding).
   */
  private Source<ByteString, NotUsed> whole(Message message) {
    if (message.isText()) {
      return Source.failed(new RelayFrame.FormatException("text message on the relay"));
    }
    BinaryMessage binary = message.asBinaryMessage();
    if (binary.isStrict()) {
      ByteString data = binary.getStrictData();
      return data.size() > RelayFrame.MAX_FRAME
          ? Source.failed(
              new RelayFrame.FormatException(
                  "relay frame larger than " + RelayFrame.MAX_FRAME + " bytes"))
          : Source.single(data);
    }
    return binary
        .getStreamedData()
        .limitWeighted(RelayFrame.MAX_FRAME, b -> (long) b.size())
        .fold(ByteString.emptyByteString(), ByteString::concat)
        .map(b -> (ByteString) b.compact())
        .mapMaterializedValue(m -> NotUsed.getInstance());
  }

  /** The connection was refused; the actor has already said why. */
  private static final class Refused extends Exception {
    Refused(String message) {
      super(message, null, false, false);
    }
  }

  private static RelayConnection.StreamEnded ended(Throwable e) {
    if (e == null) {
      return new RelayConnection.StreamEnded(null, false);
    }
    Throwable cause = e;
    while ((cause instanceof CompletionException || cause instanceof ExecutionException)
        && cause.getCause() != null) {
      cause = cause.getCause();
    }
    return switch (cause) {
      case Refused r -> new RelayConnection.StreamEnded(r.getMessage(), false);
      case RelayFrame.FormatException f ->
          new RelayConnection.StreamEnded("malformed frame: " + f.getMessage(), true);
      case org.apache.pekko.stream.scaladsl.Framing.FramingException f ->
          new RelayConnection.StreamEnded("malformed raw framing: " + f.getMessage(), true);
      case StreamLimitReachedException l ->
          new RelayConnection.StreamEnded(
              "relay frame larger than " + RelayFrame.MAX_FRAME + " bytes", true);
      default ->
          new RelayConnection.StreamEnded(
              "connection failed: "
                  + (cause.getMessage() == null
                      ? cause.getClass().getSimpleName()
                      : cause.getMessage()),
              false);
    };
  }
}
