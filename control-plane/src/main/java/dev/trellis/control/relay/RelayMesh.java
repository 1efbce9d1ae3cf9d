package dev.trellis.control.relay;

import dev.trellis.dataplane.relay.RelayClient;
import java.net.URI;
import java.net.http.HttpClient;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Consumer;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.cluster.ddata.LWWMap;
import org.apache.pekko.cluster.ddata.LWWMapKey;
import org.apache.pekko.cluster.ddata.SelfUniqueAddress;
import org.apache.pekko.cluster.ddata.typed.javadsl.DistributedData;
import org.apache.pekko.cluster.ddata.typed.javadsl.Replicator;
import org.apache.pekko.util.ByteString;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The relays of one cluster as a mesh. Which relay holds each node's connection is a replicated map
 * (Distributed Data, node key → relay key) that every relay updates for its own nodes. A packet for
 * a node this relay does not hold goes, as a ForwardPacket, to the relay that does, over a
 * connection this relay opened to it like a node would (authenticated with this relay's key); that
 * relay delivers it to its own node and never forwards it again. So two nodes homed on different
 * relays reach each other with one extra hop, and each node needs only its home connection.
 *
 * <p>Threads: the packet path (the relay's stream threads) reads the concurrent maps and writes to
 * a link's queue; the bookkeeping actor, spawned by {@link #start}, alone writes {@code holders}
 * and {@code peers} (who holds what, which relays are alive). Links are dialled and closed by
 * whichever thread first needs them, guarded by their own atomics.
 */
public final class RelayMesh {
  static final LWWMapKey<String, String> HOLDERS = new LWWMapKey<>("trellis-relay-holders");

  /** Writes go to every reachable member at once; an unreachable one catches up by gossip. */
  static final Duration WRITE_TIMEOUT = Duration.ofSeconds(3);

  /**
   * A link that failed is not dialled again for this long (packets for it are dropped meanwhile).
   */
  static final long REDIAL_NANOS = Duration.ofSeconds(1).toNanos();

  /** How long dialling another relay may take before the link counts as failed. */
  static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);

  private static final Logger LOG = LoggerFactory.getLogger(RelayMesh.class);

  /** Another relay of the cluster: where to reach it and who it is. */
  record Peer(String key, String url, String member) {}

  private final RelayRegistry registry;
  private final byte[] privateKey;
  private final String selfKey;

  /** Links dial like nodes do: HTTP/1.1, for the raw upgrade. */
  private final HttpClient http =
      HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(CONNECT_TIMEOUT)
          .followRedirects(HttpClient.Redirect.NORMAL)
          .build();

  /**
   * Node key → the key of the relay holding its connection (others' nodes and, briefly, stale own
   * entries).
   */
  private final ConcurrentHashMap<RelayKey, String> holders = new ConcurrentHashMap<>();

  /** Relay key → the live relay it belongs to (not this one). */
  private final ConcurrentHashMap<String, Peer> peers = new ConcurrentHashMap<>();

  private final ConcurrentHashMap<String, Link> links = new ConcurrentHashMap<>();
  final LongAdder forwarded = new LongAdder();
  final LongAdder forwardDropped = new LongAdder();
  final LongAdder received = new LongAdder();

  public RelayMesh(RelayRegistry registry, byte[] privateKey, String selfKey) {
    this.registry = registry;
    this.privateKey = privateKey.clone();
    this.selfKey = selfKey;
  }

  /**
   * Spawns the bookkeeping actor as a child of {@code parent} and hooks the registry's connects and
   * disconnects.
   */
  public RelayMesh start(ActorContext<?> parent) {
    ActorRef<Command> actor = parent.spawn(behavior(), "relay-mesh");
    registry.onHolding(
        new RelayRegistry.HoldingListener() {
          @Override
          public void holding(RelayKey node) {
            actor.tell(new Holding(node.base64(), true));
          }

          @Override
          public void released(RelayKey node) {
            actor.tell(new Holding(node.base64(), false));
          }
        });
    return this;
  }

  /**
   * Whether {@code key} is the key of another live relay of this cluster (it may send ForwardPacket
   * here).
   */
  boolean isPeerRelay(RelayKey key) {
    return peers.containsKey(key.base64());
  }

  /** The relays this one knows as live peers, for the admin API and tests. */
  public Set<String> peerKeys() {
    return Set.copyOf(peers.keySet());
  }

  /** Which relay (by key) the mesh says holds {@code nodeKey}'s connection, or null. */
  public String holderOf(byte[] nodeKey) {
    return holders.get(RelayKey.of(nodeKey));
  }

  /**
   * The packet path: sends {@code packet} from {@code source} to the relay holding {@code
   * destination}. False when no other relay holds it (the caller treats it as unknown).
   */
  boolean forward(RelayKey source, RelayKey destination, ByteString packet) {
    String holder = holders.get(destination);
    if (holder == null || holder.equals(selfKey)) {
      return false;
    }
    Peer peer = peers.get(holder);
    if (peer == null) {
      return false;
    }
    Link link = links.computeIfAbsent(holder, k -> new Link(peer));
    RelayClient client = link.client;
    if (client == null || !client.isOpen()) {
      link.dialIfDue();
      forwardDropped.increment();
      return true; // it is held elsewhere: dropping now is the answer, WireGuard retransmits
    }
    byte[] bytes = packet.toArrayUnsafe();
    if (client.forward(source.bytes(), destination.bytes(), bytes, 0, bytes.length)) {
      forwarded.increment();
      link.forwarded.increment();
    } else {
      forwardDropped.increment();
    }
    return true;
  }

  /**
   * Packets sent to other relays, dropped on the way there, and received from them to deliver here.
   */
  public long forwardedCount() {
    return forwarded.sum();
  }

  /** Packets sent to each other relay this one has linked to, by that relay's URL. */
  public Map<String, Long> forwardedByPeer() {
    Map<String, Long> out = new HashMap<>();
    links.values().forEach(l -> out.merge(l.peer.url(), l.forwarded.sum(), Long::sum));
    return out;
  }

  public long forwardDroppedCount() {
    return forwardDropped.sum();
  }

  public long receivedCount() {
    return received.sum();
  }

  /** Closes every link (the server is stopping). */
  public void close() {
    links.values().forEach(Link::close);
    links.clear();
  }

  /** One outgoing connection to another relay, dialled on first use and again after it drops. */
  private final class Link {
    final Peer peer;
    final LongAdder forwarded = new LongAdder();
    volatile RelayClient client;
    final AtomicBoolean dialing = new AtomicBoolean();
    volatile long notBefore;
    volatile boolean closed;

    Link(Peer peer) {
      this.peer = peer;
    }

    void dialIfDue() {
      if (closed || System.nanoTime() - notBefore < 0 || !dialing.compareAndSet(false, true)) {
        return;
      }
      RelayClient.connect(
              http,
              URI.create(peer.url()),
              privateKey,
              Base64.getDecoder().decode(peer.key()),
              new RelayClient.Listener() {
                @Override
                public void onPacket(byte[] srcKey, byte[] packet, int len) {
                  // Relays do not send packets back over a mesh link.
                }

                @Override
                public void onClosed(String reason) {
                  client = null;
                  notBefore = System.nanoTime() + REDIAL_NANOS;
                  LOG.info("relay mesh: link to " + peer.url() + " closed (" + reason + ")");
                }
              },
              RelayClient.Transport.RAW)
          .whenComplete(
              (c, failure) -> {
                if (failure != null) {
                  notBefore = System.nanoTime() + REDIAL_NANOS;
                  LOG.info(
                      "relay mesh: cannot link to " + peer.url() + ": " + failure.getMessage());
                } else if (closed) {
                  c.close();
                } else {
                  client = c;
                  LOG.info("relay mesh: linked to " + peer.url());
                }
                dialing.set(false);
              });
    }

    void close() {
      closed = true;
      RelayClient c = client;
      if (c != null) {
        c.close();
      }
    }
  }

  // ---- bookkeeping ---------------------------------------------------------------------------

  sealed interface Command {}

  /** This relay started ({@code true}) or stopped holding a node's connection. */
  private record Holding(String nodeKey, boolean held) implements Command {}

  private record HoldersChanged(Map<String, String> entries) implements Command {}

  private record Listing(Receptionist.Listing listing) implements Command {}

  private record Described(ActorRef<RelayDirectory.Command> relay, RelayDirectory.RelayInfo info)
      implements Command {}

  private record Ignored() implements Command {}

  private Behavior<Command> behavior() {
    return Behaviors.setup(
        ctx ->
            DistributedData.<Command, LWWMap<String, String>>withReplicatorMessageAdapter(
                replicator -> {
                  SelfUniqueAddress self = DistributedData.get(ctx.getSystem()).selfUniqueAddress();
                  replicator.subscribe(
                      HOLDERS,
                      response ->
                          response instanceof Replicator.Changed<LWWMap<String, String>> changed
                              ? new HoldersChanged(Map.copyOf(changed.get(HOLDERS).getEntries()))
                              : new Ignored());
                  ctx.getSystem()
                      .receptionist()
                      .tell(
                          Receptionist.subscribe(
                              RelayDirectory.KEY,
                              ctx.messageAdapter(Receptionist.Listing.class, Listing::new)));
                  Map<ActorRef<RelayDirectory.Command>, Peer> live = new HashMap<>();
                  boolean[] firstView = {true};
                  // Every change to the holders map: written to all reachable members at once.
                  Consumer<Function<LWWMap<String, String>, LWWMap<String, String>>> update =
                      modify ->
                          replicator.askUpdate(
                              replyTo ->
                                  new Replicator.Update<>(
                                      HOLDERS,
                                      LWWMap.empty(),
                                      new Replicator.WriteAll(WRITE_TIMEOUT),
                                      replyTo,
                                      modify),
                              response -> new Ignored());
                  return Behaviors.receiveMessage(
                      m -> {
                        switch (m) {
                          case Holding h ->
                              update.accept(
                                  map ->
                                      h.held()
                                          ? map.put(self, h.nodeKey(), selfKey)
                                          : selfKey.equals(map.getEntries().get(h.nodeKey()))
                                              ? map.remove(self, h.nodeKey())
                                              : map);
                          case HoldersChanged c -> {
                            Set<RelayKey> current = new HashSet<>();
                            Set<String> staleOwn = new HashSet<>();
                            c.entries()
                                .forEach(
                                    (node, relay) -> {
                                      RelayKey k = RelayKey.of(Base64.getDecoder().decode(node));
                                      current.add(k);
                                      holders.put(k, relay);
                                      if (relay.equals(selfKey)
                                          && !registry.isConnected(k.bytes())) {
                                        staleOwn.add(node);
                                      }
                                    });
                            holders.keySet().retainAll(current);
                            // A node connected here that the map no longer names (another relay it
                            // touched briefly claimed it, then let go): claim it again, or the
                            // other relays would drop every packet for it.
                            Set<String> unclaimed = new HashSet<>(registry.heldNodes());
                            unclaimed.removeAll(c.entries().keySet());
                            if (!unclaimed.isEmpty()) {
                              update.accept(
                                  map -> {
                                    LWWMap<String, String> out = map;
                                    for (String node : unclaimed) {
                                      if (!map.getEntries().containsKey(node)
                                          && registry.isConnected(
                                              Base64.getDecoder().decode(node))) {
                                        out = out.put(self, node, selfKey);
                                      }
                                    }
                                    return out;
                                  });
                            }
                            if (firstView[0] && !staleOwn.isEmpty()) {
                              // Left by this relay's previous run (it crashed holding them): they
                              // are not here now.
                              update.accept(
                                  map -> {
                                    LWWMap<String, String> out = map;
                                    for (String node : staleOwn) {
                                      if (selfKey.equals(map.getEntries().get(node))
                                          && !registry.isConnected(
                                              Base64.getDecoder().decode(node))) {
                                        out = out.remove(self, node);
                                      }
                                    }
                                    return out;
                                  });
                            }
                            firstView[0] = false;
                          }
                          case Listing l -> {
                            // All instances, reachable or not: a member that is briefly unreachable
                            // is still a peer.
                            Set<ActorRef<RelayDirectory.Command>> current =
                                l.listing().getAllServiceInstances(RelayDirectory.KEY);
                            for (var gone : new HashSet<>(live.keySet())) {
                              if (!current.contains(gone)) {
                                Peer peer = live.remove(gone);
                                // A relay that restarted with the same key may already be listed
                                // again.
                                if (peer != null
                                    && live.values().stream()
                                        .noneMatch(p -> p.key().equals(peer.key()))) {
                                  dropPeer(peer);
                                }
                              }
                            }
                            for (ActorRef<RelayDirectory.Command> r : current) {
                              if (!live.containsKey(r)) {
                                ctx.ask(
                                    RelayDirectory.RelayInfo.class,
                                    r,
                                    Duration.ofSeconds(5),
                                    RelayDirectory.Describe::new,
                                    (info, failure) ->
                                        info == null ? new Ignored() : new Described(r, info));
                              }
                            }
                          }
                          case Described d -> {
                            if (d.info().key() != null
                                && !d.info().key().equals(selfKey)
                                && d.info().url() != null) {
                              Peer peer =
                                  new Peer(d.info().key(), d.info().url(), d.info().member());
                              live.put(d.relay(), peer);
                              peers.put(peer.key(), peer);
                            }
                          }
                          case Ignored i -> {}
                        }
                        return Behaviors.same();
                      });
                }));
  }

  /**
   * A relay left the cluster: forget it and close the link. The nodes it held stay in the
   * replicated map until they connect elsewhere (a newer entry) or it comes back and clears what it
   * no longer holds.
   */
  private void dropPeer(Peer peer) {
    peers.remove(peer.key());
    Link link = links.remove(peer.key());
    if (link != null) {
      link.close();
    }
  }
}
