package dev.trellis.control.relay;

import dev.trellis.proto.relay.RelayFrame;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.stream.QueueOfferResult;
import org.apache.pekko.util.ByteString;

/**
 * Which node key is connected to this relay, and that connection's outbound queue. Forwarding does
 * not go through any actor: the inbound stream of the sender looks the destination up here and
 * offers the frame to its bounded queue directly; a full queue drops the newest frame (WireGuard
 * retransmits) and counts it. Thread-safe.
 */
public final class RelayRegistry {

  /** One connection that proved it holds {@link #key}. Frames reach it only once {@link #ready}. */
  static final class Client {
    final RelayKey key;
    final BoundedSourceQueue<ByteString> queue;
    final ActorRef<RelayConnection.Command> connection;

    /** RecvPacket | this key: the header of every packet this client sends to others. */
    final ByteString recvHeader;

    /** Who sent to this client, to be told PeerGone(disconnected) when it goes. */
    final Set<RelayKey> senders = ConcurrentHashMap.newKeySet();

    final LongAdder dropped = new LongAdder();
    volatile boolean ready;

    /** Another relay of the cluster (it forwards its nodes' packets here), not a node. */
    volatile boolean mesh;

    Client(
        RelayKey key,
        BoundedSourceQueue<ByteString> queue,
        ActorRef<RelayConnection.Command> connection) {
      this.key = key;
      this.queue = queue;
      this.connection = connection;
      byte[] header = new byte[RelayFrame.PACKET_HEADER];
      header[0] = RelayFrame.RECV_PACKET;
      System.arraycopy(key.bytes(), 0, header, 1, RelayFrame.KEY_LENGTH);
      this.recvHeader = ByteString.fromArrayUnsafe(header);
    }
  }

  /** Counters since start, for the admin API. */
  public record Stats(
      String region,
      int connected,
      long accepted,
      long refused,
      long framesIn,
      long bytesIn,
      long packetsForwarded,
      long bytesForwarded,
      long dropped,
      long unknownDestination,
      long malformed,
      long replaced) {}

  /**
   * Told when this relay starts and stops holding a node's connection (the relay mesh publishes
   * it).
   */
  interface HoldingListener {
    void holding(RelayKey node);

    void released(RelayKey node);
  }

  private volatile HoldingListener holdingListener;
  private final String region;
  private final ConcurrentHashMap<RelayKey, Client> clients = new ConcurrentHashMap<>();
  final LongAdder accepted = new LongAdder();
  final LongAdder refused = new LongAdder();
  final LongAdder framesIn = new LongAdder();
  final LongAdder bytesIn = new LongAdder();
  final LongAdder packetsForwarded = new LongAdder();
  final LongAdder bytesForwarded = new LongAdder();
  final LongAdder dropped = new LongAdder();
  final LongAdder unknownDestination = new LongAdder();
  final LongAdder malformed = new LongAdder();
  final LongAdder replaced = new LongAdder();

  public RelayRegistry(String region) {
    this.region = region;
  }

  public Stats stats() {
    return new Stats(
        region,
        (int) clients.values().stream().filter(c -> c.ready && !c.mesh).count(),
        accepted.sum(),
        refused.sum(),
        framesIn.sum(),
        bytesIn.sum(),
        packetsForwarded.sum(),
        bytesForwarded.sum(),
        dropped.sum(),
        unknownDestination.sum(),
        malformed.sum(),
        replaced.sum());
  }

  /** Frames waiting in every connection's send queue (nodes' and mesh links'). */
  public long queuedFrames() {
    long total = 0;
    for (Client c : clients.values()) {
      total += c.queue.size();
    }
    return total;
  }

  /** Whether a node key has a ready connection here. */
  public boolean isConnected(byte[] nodeKey) {
    Client c = clients.get(RelayKey.of(nodeKey));
    return c != null && c.ready;
  }

  /** The nodes (not other relays) connected here and ready, by key in base64. */
  Set<String> heldNodes() {
    Set<String> out = new HashSet<>();
    clients.forEach(
        (k, c) -> {
          if (c.ready && !c.mesh) {
            out.add(k.base64());
          }
        });
    return out;
  }

  /** Frames waiting for the node with this key (0 if not connected). */
  public int queued(byte[] nodeKey) {
    Client c = clients.get(RelayKey.of(nodeKey));
    return c == null ? 0 : c.queue.size();
  }

  void onHolding(HoldingListener listener) {
    holdingListener = listener;
  }

  /** The connection finished its handshake: packets may reach it now. */
  void ready(Client client) {
    client.ready = true;
    HoldingListener l = holdingListener;
    if (l != null && !client.mesh && clients.get(client.key) == client) {
      l.holding(client.key);
    }
  }

  /**
   * Adds {@code client}, returning the connection it replaces (for the caller to close), or null.
   */
  Client register(Client client) {
    Client previous = clients.put(client.key, client);
    if (previous != null && previous != client) {
      replaced.increment();
      return previous;
    }
    return null;
  }

  /** Removes {@code client} if it is still the one registered; tells its senders it is gone. */
  void unregister(Client client) {
    if (clients.remove(client.key, client) && client.ready) {
      HoldingListener l = holdingListener;
      if (l != null && !client.mesh) {
        l.released(client.key);
      }
      byte[] gone =
          RelayFrame.encode(
              new RelayFrame.PeerGone(client.key.bytes(), RelayFrame.GONE_DISCONNECTED));
      ByteString message = ByteString.fromArrayUnsafe(gone);
      for (RelayKey sender : client.senders) {
        Client s = clients.get(sender);
        if (s != null && s.ready) {
          offerControl(s, message);
        }
      }
    }
  }

  Client get(RelayKey key) {
    Client c = clients.get(key);
    return c != null && c.ready ? c : null;
  }

  /** The base64 node keys of the connections that completed their handshake. */
  public List<String> connectedKeys() {
    return clients.values().stream()
        .filter(c -> c.ready && !c.mesh)
        .map(c -> c.key.base64())
        .toList();
  }

  /** Closes the connection of a node key that is no longer live, if there is one. */
  void evict(String base64Key, String reason) {
    RelayKey key;
    try {
      key = RelayKey.of(Base64.getDecoder().decode(base64Key));
    } catch (IllegalArgumentException e) {
      return;
    }
    Client c = clients.get(key);
    if (c != null) {
      c.connection.tell(new RelayConnection.Close(reason));
    }
  }

  /** A forwarded packet: counted as forwarded or dropped. */
  void offerPacket(Client target, ByteString message, int bytes) {
    QueueOfferResult result = target.queue.offer(message);
    if (result.isEnqueued()) {
      packetsForwarded.increment();
      bytesForwarded.add(bytes);
    } else {
      dropped.increment();
      target.dropped.increment();
    }
  }

  /**
   * A frame from the relay itself (Pong, PeerGone, KeepAlive): dropped silently if the queue is
   * full.
   */
  static boolean offerControl(Client target, ByteString message) {
    return target.queue.offer(message).isEnqueued();
  }

  /**
   * A frame for every connected node (Health, Restarting); dropped for a node whose queue is full.
   */
  public void broadcast(RelayFrame.Frame frame) {
    ByteString encoded = RelayConnection.frame(frame);
    for (Client c : clients.values()) {
      if (c.ready) {
        offerControl(c, encoded);
      }
    }
  }
}
