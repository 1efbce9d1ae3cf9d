package dev.trellis.control.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.node.NodeRecord;
import dev.trellis.proto.control.ControlMessage.FilterRule;
import dev.trellis.proto.control.ControlMessage.PortRange;
import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Visibility and each node's packet filter, from the lab policy applied to real node records. */
class PolicyViewTest {
  private static NodeRecord node(long id, String host, String user, String... tags) {
    return new NodeRecord(
        id,
        "m" + id,
        "k" + id,
        user,
        host,
        "100.64." + id / 256 + "." + id % 256,
        "fd7a:115c:a1e0::" + Long.toHexString(id),
        Set.of(tags),
        false,
        Instant.EPOCH,
        null,
        false,
        false);
  }

  private static BitSet ids(long... ids) {
    BitSet b = new BitSet();
    for (long id : ids) b.set((int) id);
    return b;
  }

  @Test
  void teamsSeeOnlyWhoTheyMayTalkTo() throws Exception {
    Policy policy = Policy.parse(PolicyParseTest.LAB);
    List<NodeRecord> nodes =
        List.of(
            node(1, "laptop", "alice"),
            node(2, "a1", "anna", "tag:robot-a"),
            node(3, "a2", "anna", "tag:robot-a"),
            node(4, "b1", "bob", "tag:robot-b"),
            node(5, "anna-pc", "anna"),
            node(6, "anna-phone", "anna"));
    PolicyView view = PolicyView.of(policy, nodes);
    assertEquals(ids(2, 3, 4), view.peers(1), "the admin sees both teams");
    assertEquals(ids(1, 3), view.peers(2), "a1 sees its team and the admin, not team B");
    assertEquals(ids(1), view.peers(4), "b1 sees only the admin");
    assertEquals(ids(6), view.peers(5), "autogroup:self: anna's own devices");
    assertEquals(ids(), view.peers(99));

    // b1 accepts ssh from the admin and anything from its own team (nobody else on it yet).
    List<FilterRule> b1 = view.filter(4);
    assertEquals(
        List.of(
            new FilterRule(
                List.of("100.64.0.4", "fd7a:115c:a1e0::4"), List.of(PortRange.ALL), List.of()),
            new FilterRule(
                List.of("100.64.0.1", "fd7a:115c:a1e0::1"),
                List.of(new PortRange(22, 22)),
                List.of())),
        b1);
    // The admin's laptop accepts only its user's own devices (autogroup:self), i.e. itself here.
    assertEquals(
        List.of(
            new FilterRule(
                List.of("100.64.0.1", "fd7a:115c:a1e0::1"), List.of(PortRange.ALL), List.of())),
        view.filter(1));
    List<FilterRule> annaPc = view.filter(5);
    assertEquals(1, annaPc.size());
    assertEquals(
        List.of("100.64.0.5", "fd7a:115c:a1e0::5", "100.64.0.6", "fd7a:115c:a1e0::6"),
        annaPc.getFirst().srcs());
  }

  @Test
  void anyAndPrefixSourcesAreSentAsWritten() throws Exception {
    Policy policy =
        Policy.parse(
            """
            {"tagOwners": {"tag:srv": ["ops@"]},
             "acls": [{"action": "accept", "src": ["*"], "dst": ["tag:srv:443"], "proto": "tcp"},
                      {"action": "accept", "src": ["100.64.0.0/24"], "dst": ["tag:srv:22"]}]}
            """);
    PolicyView view =
        PolicyView.of(policy, List.of(node(1, "srv", "ops", "tag:srv"), node(2, "pc", "x")));
    assertEquals(
        List.of(
            new FilterRule(List.of("*"), List.of(new PortRange(443, 443)), List.of(6)),
            new FilterRule(List.of("100.64.0.0/24"), List.of(new PortRange(22, 22)), List.of())),
        view.filter(1));
    assertEquals(ids(1), view.peers(2));
    assertTrue(view.filter(2).isEmpty(), "nothing may open to the pc");
  }

  /** Not a benchmark (see docs/BENCHMARKS.md); a guard that the view is built in one pass. */
  @Test
  void aThousandNodesInTwentyTeams() throws Exception {
    StringBuilder owners = new StringBuilder();
    StringBuilder acls = new StringBuilder();
    for (int t = 0; t < 20; t++) {
      owners.append(t == 0 ? "" : ",").append("\"tag:team-").append(t).append("\": [\"ops@\"]");
      acls.append(t == 0 ? "" : ",")
          .append("{\"action\": \"accept\", \"src\": [\"tag:team-")
          .append(t)
          .append("\"], \"dst\": [\"tag:team-")
          .append(t)
          .append(":*\"]}");
    }
    Policy policy = Policy.parse("{\"tagOwners\": {" + owners + "}, \"acls\": [" + acls + "]}");
    List<NodeRecord> nodes = new ArrayList<>();
    for (int i = 1; i <= 1000; i++) nodes.add(node(i, "r" + i, "ops", "tag:team-" + (i % 20)));
    PolicyView view = PolicyView.of(policy, nodes);
    assertEquals(49, view.peers(1).cardinality(), "a robot sees the other 49 of its team");
    assertEquals(1, view.filter(1).size());
    assertEquals(100, view.filter(1).getFirst().srcs().size(), "50 robots, two addresses each");
  }
}
