package dev.trellis.control.server;

import dev.trellis.control.session.ControlSession;
import dev.trellis.proto.control.ControlChannel;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.http.javadsl.model.ws.BinaryMessage;
import org.apache.pekko.http.javadsl.model.ws.Message;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.OverflowStrategy;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.stream.typed.javadsl.ActorSink;
import org.apache.pekko.stream.typed.javadsl.ActorSource;
import org.apache.pekko.util.ByteString;

/**
 * The WebSocket side of a control session: binary messages in (made whole, at most {@link
 * ControlChannel#MAX_NODE_MESSAGE} bytes) go to a fresh {@link ControlSession} actor, and its
 * frames go out. A node that cannot keep up with {@link #OUTBOUND_BUFFER} queued messages is
 * disconnected: it reconnects and gets a fresh full map instead of an ever-growing backlog.
 */
final class ControlRoute {
  static final int OUTBOUND_BUFFER = 512;

  private final ActorSystem<?> system;
  private final ControlSession.Services services;
  private final Materializer materializer;
  private final AtomicLong sessionCounter = new AtomicLong();

  ControlRoute(ActorSystem<?> system, ControlSession.Services services) {
    this.system = system;
    this.services = services;
    this.materializer = Materializer.matFromSystem(system);
  }

  Flow<Message, Message, NotUsed> newSession() {
    Pair<ActorRef<ControlSession.Outbound>, Source<ControlSession.Outbound, NotUsed>> outbound =
        ActorSource.<ControlSession.Outbound>actorRef(
                m -> m instanceof ControlSession.Close,
                m -> Optional.empty(),
                OUTBOUND_BUFFER,
                OverflowStrategy.fail())
            .preMaterialize(materializer);
    ActorRef<ControlSession.Command> session =
        system.systemActorOf(
            ControlSession.create(services, outbound.first()),
            "control-session-" + sessionCounter.incrementAndGet(),
            Props.empty());
    Sink<Message, NotUsed> in =
        Flow.<Message>create()
            .mapAsync(1, this::whole)
            .map(bytes -> (ControlSession.Command) new ControlSession.Inbound(bytes))
            .to(
                ActorSink.actorRef(
                    session, new ControlSession.StreamClosed(), ControlSession.StreamFailed::new));
    Source<Message, NotUsed> out =
        outbound
            .second()
            .filter(m -> m instanceof ControlSession.Frame)
            .map(
                m ->
                    (Message)
                        BinaryMessage.create(
                            ByteString.fromArrayUnsafe(((ControlSession.Frame) m).bytes())));
    // Not coupled: when the session ends its outbound side, the last frames (a refused login,
    // a goodbye) go out and the close handshake runs, instead of the inbound side being
    // cancelled under them and the connection reset with frames still unread.
    return Flow.fromSinkAndSource(in, out);
  }

  /** A whole binary message as bytes; text or oversized messages fail the stream. */
  private CompletionStage<byte[]> whole(Message message) {
    if (message.isText()) {
      return CompletableFuture.failedStage(
          new IllegalArgumentException("text message on the control channel"));
    }
    BinaryMessage binary = message.asBinaryMessage();
    if (binary.isStrict()) {
      ByteString data = binary.getStrictData();
      return data.size() > ControlChannel.MAX_NODE_MESSAGE
          ? CompletableFuture.failedStage(new IllegalArgumentException("control message too large"))
          : CompletableFuture.completedStage(data.toArray());
    }
    return binary
        .getStreamedData()
        .limitWeighted(ControlChannel.MAX_NODE_MESSAGE, b -> (long) b.size())
        .runFold(ByteString.emptyByteString(), ByteString::concat, materializer)
        .thenApply(ByteString::toArray);
  }
}
