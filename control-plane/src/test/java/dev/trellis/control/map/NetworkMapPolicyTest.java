package dev.trellis.control.map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.policy.PolicyRegistry;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The map under a policy: each session learns only the peers its node may talk to, with its packet
 * filter first; joins, re-tags and policy changes move peers in and out of each map.
 */
class NetworkMapPolicyTest {
  private static final Duration WAIT = Duration.ofSeconds(5);
  private static final String TEAMS =
      """
      {"tagOwners": {"tag:a": ["ops@"], "tag:b": ["ops@"]},
       "acls": [{"action": "accept", "src": ["tag:a"], "dst": ["tag:a:*"]},
                {"action": "accept", "src": ["tag:b"], "dst": ["tag:b:*"]}]}
      """;

  private ActorTestKit kit;
  private ActorRef<NetworkMap.Command> map;

  @BeforeEach
  void start() {
    kit = ActorTestKit.create();
    map =
        kit.spawn(
            NetworkMap.create(
                Clock.systemUTC(),
                Duration.ofMinutes(5),
                id -> {},
                new ControlMessage.NetworkInfo("100.64.0.0/10", "fd7a:115c:a1e0::/48")));
  }

  @AfterEach
  void stop() {
    kit.shutdownTestKit();
  }

  private static NodeRecord node(long id, String tag) {
    return new NodeRecord(
        id,
        "m" + id,
        "k" + id,
        "ops",
        "r" + id,
        "100.64.0." + id,
        "fd7a:115c:a1e0::" + id,
        Set.of(tag),
        false,
        Instant.EPOCH,
        null,
        false,
        false);
  }

  private void put(NodeRecord r) {
    map.tell(new NetworkMap.FromNodes(new NodeEntity.NodeChanged(r)));
  }

  private TestProbe<NetworkMap.SessionOutput> connect(NodeRecord r) {
    TestProbe<NetworkMap.SessionOutput> session = kit.createTestProbe();
    map.tell(new NetworkMap.Connect(r, session.ref(), List.of()));
    return session;
  }

  private static ControlMessage next(TestProbe<NetworkMap.SessionOutput> session) throws Exception {
    NetworkMap.SendEncoded sent =
        assertInstanceOf(NetworkMap.SendEncoded.class, session.receiveMessage(WAIT));
    return ControlJson.decode(sent.json());
  }

  private static Set<Long> peerIds(List<ControlMessage.NodeInfo> peers) {
    Set<Long> ids = new TreeSet<>();
    peers.forEach(p -> ids.add(p.id()));
    return ids;
  }

  /** Skips messages until a delta that {@code wanted} accepts (earlier batches may come first). */
  private static ControlMessage.MapDelta deltaWhere(
      TestProbe<NetworkMap.SessionOutput> session,
      java.util.function.Predicate<ControlMessage.MapDelta> wanted)
      throws Exception {
    while (true) {
      if (next(session) instanceof ControlMessage.MapDelta d && wanted.test(d)) return d;
    }
  }

  @Test
  void eachTeamSeesOnlyItselfAndTheFilterComesFirst() throws Exception {
    NodeRecord a1 = node(1, "tag:a"), a2 = node(2, "tag:a"), b1 = node(3, "tag:b");
    for (NodeRecord r : List.of(a1, a2, b1)) put(r);
    TestProbe<NetworkMap.SessionOutput> sa1 = connect(a1);
    // No policy: the filter allows everything and every peer is there.
    assertNull(assertInstanceOf(ControlMessage.PacketFilter.class, next(sa1)).rules());
    assertEquals(
        Set.of(2L, 3L), peerIds(assertInstanceOf(ControlMessage.FullMap.class, next(sa1)).peers()));
    TestProbe<NetworkMap.SessionOutput> sb1 = connect(b1);
    next(sb1);
    next(sb1);

    map.tell(new NetworkMap.PolicyUpdate(new PolicyRegistry.Current(TEAMS, 1, Instant.now())));
    ControlMessage.PacketFilter filter =
        assertInstanceOf(ControlMessage.PacketFilter.class, nextAfterDeltas(sa1));
    assertEquals(1, filter.rules().size());
    assertEquals(
        List.of("100.64.0.1", "fd7a:115c:a1e0::1", "100.64.0.2", "fd7a:115c:a1e0::2"),
        filter.rules().getFirst().srcs());
    assertEquals(
        Set.of(2L), peerIds(assertInstanceOf(ControlMessage.FullMap.class, next(sa1)).peers()));
    assertInstanceOf(ControlMessage.PacketFilter.class, nextAfterDeltas(sb1));
    assertEquals(
        Set.of(), peerIds(assertInstanceOf(ControlMessage.FullMap.class, next(sb1)).peers()));

    // A new team-B robot: b1 learns it, with a wider filter first; a1 hears nothing of it.
    put(node(4, "tag:b"));
    ControlMessage.PacketFilter wider =
        assertInstanceOf(ControlMessage.PacketFilter.class, nextAfterDeltas(sb1));
    assertTrue(wider.rules().getFirst().srcs().contains("100.64.0.4"), wider.toString());
    ControlMessage.MapDelta delta = assertInstanceOf(ControlMessage.MapDelta.class, next(sb1));
    assertTrue(peerIds(delta.upserted()).contains(4L), delta.toString());
    assertTrue(
        peerIds(delta.upserted()).stream().noneMatch(id -> id == 1 || id == 2), delta.toString());
    nothingButItself(sa1);

    // a2 moves to team B: a1 loses it, b1 gains it.
    put(node(2, "tag:b"));
    ControlMessage.MapDelta lost = deltaWhere(sa1, d -> !d.removed().isEmpty());
    assertEquals(List.of(2L), lost.removed());
    ControlMessage.MapDelta gained = deltaWhere(sb1, d -> peerIds(d.upserted()).contains(2L));
    assertTrue(gained.removed().isEmpty(), gained.toString());

    // An old announcement changes nothing; clearing the policy gives everyone everything again.
    map.tell(new NetworkMap.PolicyUpdate(new PolicyRegistry.Current(TEAMS, 1, Instant.now())));
    nothingButItself(sa1);
    map.tell(new NetworkMap.PolicyUpdate(new PolicyRegistry.Current(null, 2, Instant.now())));
    assertNull(assertInstanceOf(ControlMessage.PacketFilter.class, nextAfterDeltas(sa1)).rules());
    assertEquals(
        Set.of(2L, 3L, 4L),
        peerIds(assertInstanceOf(ControlMessage.FullMap.class, next(sa1)).peers()));
  }

  /**
   * For a while, nothing about the other team reaches the session: only deltas of changes batched a
   * moment earlier about nodes it may see (its own presence, its team), no removal, no filter.
   */
  private static void nothingButItself(TestProbe<NetworkMap.SessionOutput> session)
      throws Exception {
    Set<Long> otherTeam = Set.of(3L, 4L);
    long end = System.nanoTime() + Duration.ofMillis(300).toNanos();
    while (System.nanoTime() < end) {
      NetworkMap.SessionOutput out;
      try {
        out = session.receiveMessage(Duration.ofNanos(Math.max(1, end - System.nanoTime())));
      } catch (AssertionError timeout) {
        return;
      }
      ControlMessage m = ControlJson.decode(((NetworkMap.SendEncoded) out).json());
      ControlMessage.MapDelta d = assertInstanceOf(ControlMessage.MapDelta.class, m);
      assertTrue(d.removed().isEmpty(), d.toString());
      assertTrue(d.upserted().stream().noneMatch(n -> otherTeam.contains(n.id())), d.toString());
    }
  }

  /** Skips the deltas of earlier changes still in flight. */
  private static ControlMessage nextAfterDeltas(TestProbe<NetworkMap.SessionOutput> session)
      throws Exception {
    while (true) {
      ControlMessage m = next(session);
      if (!(m instanceof ControlMessage.MapDelta)) return m;
    }
  }
}
