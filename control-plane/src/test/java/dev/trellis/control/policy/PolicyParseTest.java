package dev.trellis.control.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.proto.control.ControlMessage.PortRange;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The policy file: HuJSON, every section, selectors, ports, protocols, tests, and the errors. */
class PolicyParseTest {

  /** Two robot teams and an admin, the shape of a lab's policy. */
  static final String LAB =
      """
      // Lab policy: teams see their own robots; admins see team A fully, team B on ssh.
      {
        "groups": {
          "group:admins": ["alice@"],
          "group:team-a": ["anna@", "arno@example.org",], // trailing comma
        },
        "tagOwners": {
          "tag:robot-a": ["group:team-a"],
          "tag:robot-b": ["bob@"],
        },
        "hosts": { "printer": "100.64.9.9", "lab-net": "192.168.50.0/24" },
        "acls": [
          /* same team */
          {"action": "accept", "src": ["tag:robot-a"], "dst": ["tag:robot-a:*"]},
          {"action": "accept", "src": ["tag:robot-b"], "dst": ["tag:robot-b:*"]},
          {"action": "accept", "src": ["group:admins"], "dst": ["tag:robot-a:*", "tag:robot-b:22"]},
          {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
          {"action": "accept", "src": ["lab-net"], "dst": ["printer:631,9100-9102"], "proto": "tcp"},
        ],
        "tests": [
          {"src": "alice@", "accept": ["tag:robot-a:80", "tag:robot-b:22"], "deny": ["tag:robot-b:80"]},
          {"src": "tag:robot-a", "accept": ["tag:robot-a:11311"], "deny": ["tag:robot-b:22", "alice@:22"]},
          {"src": "192.168.50.7", "proto": "tcp", "accept": ["printer:9101"], "deny": ["printer:80"]},
        ],
      }
      """;

  private static PolicyException refused(String text) {
    return assertThrows(PolicyException.class, () -> Policy.parse(text));
  }

  @Test
  void readsEverySectionWithCommentsAndTrailingCommas() throws Exception {
    Policy p = Policy.parse(LAB);
    assertEquals(Set.of("anna", "arno@example.org"), p.groups().get("group:team-a"));
    assertEquals(Set.of("anna", "arno@example.org"), p.tagOwners().get("tag:robot-a"));
    assertEquals(Set.of("bob"), p.tagOwners().get("tag:robot-b"));
    assertEquals("192.168.50.0/24", p.hosts().get("lab-net").text());
    assertEquals(5, p.acls().size());
    assertEquals(3, p.tests().size());
    Acl printer = p.acls().get(4);
    assertEquals(
        List.of(new PortRange(631, 631), new PortRange(9100, 9102)),
        printer.dst().getFirst().ports());
    assertEquals(Set.of(6), printer.protos());
    assertEquals(List.of(PortRange.ALL), p.acls().getFirst().dst().getFirst().ports());
  }

  @Test
  void decidesLikeTailscale() throws Exception {
    Policy p = Policy.parse(LAB);
    Principal alice = Principal.node("laptop", "alice", Set.of(), "100.64.0.1");
    Principal a1 = Principal.node("a1", "anna", Set.of("tag:robot-a"), "100.64.0.2");
    Principal a2 = Principal.node("a2", "arno@example.org", Set.of("tag:robot-a"), "100.64.0.3");
    Principal b1 = Principal.node("b1", "bob", Set.of("tag:robot-b"), "100.64.0.4");
    Principal anna = Principal.node("anna-pc", "anna", Set.of(), "100.64.0.5");
    Principal annaPhone = Principal.node("anna-phone", "anna", Set.of(), "100.64.0.6");
    record Case(Principal src, Principal dst, int proto, int port, boolean allowed) {}
    List<Case> cases =
        List.of(
            new Case(a1, a2, 6, 11311, true),
            new Case(a1, b1, 6, 22, false),
            new Case(b1, a1, 17, 53, false),
            new Case(alice, a1, 6, 8080, true),
            new Case(alice, b1, 6, 22, true),
            new Case(alice, b1, 6, 23, false),
            new Case(a1, alice, 6, 22, false), // robots cannot open to the admin
            new Case(alice, b1, 1, -1, true), // echo: addresses match, ports ignored
            new Case(a1, b1, 1, -1, false),
            new Case(anna, annaPhone, 6, 5000, true), // autogroup:self
            new Case(anna, alice, 6, 5000, false),
            new Case(anna, a1, 6, 5000, false), // a tagged node is not its user's own
            new Case(a1, anna, 6, 5000, false));
    for (Case c : cases) {
      assertEquals(
          c.allowed(),
          p.decide(c.src(), c.dst(), c.proto(), c.port()).allowed(),
          c.src().name() + " -> " + c.dst().name() + " " + c.proto() + ":" + c.port());
    }
    Policy.Verdict v = p.decide(alice, b1, 6, 22);
    assertEquals(2, v.acl().index());
    assertEquals("tag:robot-b:22", v.destination().text());
  }

  @Test
  void portsAndProtocols() throws Exception {
    assertEquals(
        List.of(new PortRange(22, 22), new PortRange(80, 90)), Policy.ports("22,80-90", 1));
    for (String bad : new String[] {"", "x", "70000", "90-80", "1-2-3", "22,"}) {
      assertThrows(PolicyException.class, () -> Policy.ports(bad, 1), bad);
    }
    String udp =
        """
        {"tagOwners": {"tag:a": ["x@"]},
         "acls": [{"action": "accept", "src": ["*"], "dst": ["tag:a:53"], "proto": "udp"}]}
        """;
    Policy p = Policy.parse(udp);
    Principal any = Principal.node("h", "y", Set.of(), "100.64.0.9");
    Principal a = Principal.node("a", "x", Set.of("tag:a"), "100.64.0.10");
    assertTrue(p.decide(any, a, 17, 53).allowed());
    assertTrue(!p.decide(any, a, 6, 53).allowed());
    assertTrue(
        refused(udp.replace("\"udp\"", "\"carrier-pigeon\"")).getMessage().contains("proto"));
  }

  @Test
  void selectorsOfEveryKind() throws Exception {
    String text =
        """
        {"groups": {"group:g": ["u@"]}, "tagOwners": {"tag:t": ["u@"]}, "hosts": {"h": "10.0.0.0/8"},
         "acls": [{"action": "accept",
                   "src": ["*", "u@", "group:g", "tag:t", "autogroup:member", "autogroup:tagged",
                           "h", "100.64.0.1", "100.64.0.0/16", "fd7a:115c:a1e0::1", "fd7a:115c:a1e0::/48"],
                   "dst": ["fd7a:115c:a1e0::5:22", "[fd7a:115c:a1e0::6]:22", "autogroup:self:*"]}]}
        """;
    Policy p = Policy.parse(text);
    assertEquals(11, p.acls().getFirst().src().size());
    assertEquals(
        "fd7a:115c:a1e0::5/128",
        ((Selector.Prefix) p.acls().getFirst().dst().getFirst().host()).cidr().text());
    assertNotNull(((Selector.Prefix) p.acls().getFirst().dst().get(1).host()).cidr());
  }

  @Test
  void errorsNameWhatAndWhere() {
    assertEquals(3, refused("{\n\"acls\": [\n  {\"action\": \"accept\" \"src\": []}]}").line());
    PolicyException ssh = refused("{\n  \"ssh\": []\n}");
    assertEquals(2, ssh.line());
    assertTrue(ssh.getMessage().contains("\"ssh\" is not supported"), ssh.getMessage());
    String[][] cases = {
      {
        "{\"acls\": [{\"action\": \"deny\", \"src\": [\"*\"], \"dst\": [\"*:*\"]}]}",
        "action must be \"accept\""
      },
      {
        "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"], \"users\": []}]}",
        "\"users\" in an acls entry is not supported"
      },
      {
        "{\"acls\": [{\"action\": \"accept\", \"src\": [\"group:nope\"], \"dst\": [\"*:*\"]}]}",
        "unknown group group:nope"
      },
      {
        "{\"acls\": [{\"action\": \"accept\", \"src\": [\"tag:x\"], \"dst\": [\"*:*\"]}]}",
        "tag:x is not defined in tagOwners"
      },
      {
        "{\"acls\": [{\"action\": \"accept\", \"src\": [\"autogroup:internet\"], \"dst\": [\"*:*\"]}]}",
        "autogroup:internet is not supported"
      },
      {
        "{\"acls\": [{\"action\": \"accept\", \"src\": [\"autogroup:self\"], \"dst\": [\"*:*\"]}]}",
        "autogroup:self can only be a destination"
      },
      {
        "{\"acls\": [{\"action\": \"accept\", \"src\": [\"robots\"], \"dst\": [\"*:*\"]}]}",
        "unknown selector \"robots\""
      },
      {
        "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*\"]}]}",
        "must be host:ports"
      },
      {"{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"]}]}", "needs \"dst\""},
      {"{\"groups\": {\"team\": [\"a@\"]}}", "group names look like group:name"},
      {"{\"groups\": {\"group:t\": [\"group:u\"]}}", "members are users"},
      {"{\"tagOwners\": {\"tag:X\": [\"a@\"]}}", "is not a tag"},
      {"{\"hosts\": {\"p\": \"printer.lab\"}}", "must be an IP address or prefix"},
      {"{\"acls\": [], \"acls\": []}", "appears twice"},
      {"[]", "a policy is a JSON object"},
      {"", "the policy is empty"},
      {"{\"tests\": [{\"src\": \"*\", \"accept\": []}]}", "cannot stand for a host in a test"},
      {"{\"tests\": [{\"src\": \"a@\", \"accept\": [\"b@\"]}]}", "must be host:port"},
    };
    for (String[] c : cases) {
      PolicyException e = refused(c[0]);
      assertTrue(e.getMessage().contains(c[1]), c[0] + " -> " + e.getMessage());
    }
  }

  @Test
  void aFailingTestRefusesThePolicyNamingIt() {
    String failing =
        LAB.replace("\"deny\": [\"tag:robot-b:80\"]", "\"deny\": [\"tag:robot-b:22\"]");
    PolicyException e = refused(failing);
    assertTrue(
        e.getMessage()
            .contains("test 1 fails: alice@ should not reach tag:robot-b:22/tcp but acls[2]"),
        e.getMessage());
    PolicyException accept =
        refused(LAB.replace("\"accept\": [\"printer:9101\"]", "\"accept\": [\"printer:9200\"]"));
    assertTrue(
        accept
            .getMessage()
            .contains(
                "test 3 fails: 192.168.50.7 should reach printer:9200/tcp but no rule allows it"),
        accept.getMessage());
    assertTrue(accept.line() > 0);
  }

  @Test
  void cidrsMatchByPrefix() {
    Cidr c = Cidr.parse("100.64.0.0/10");
    assertEquals("100.64.0.0/10", c.text());
    assertTrue(c.contains(new byte[] {100, 127, (byte) 255, 1}));
    assertTrue(!c.contains(new byte[] {100, (byte) 128, 0, 1}));
    assertEquals("100.64.0.0/10", Cidr.parse("100.65.3.4/10").text(), "host bits dropped");
    assertNull(Cidr.parse("printer"));
    assertNull(Cidr.parse("100.64.0.0/33"));
    assertNull(Cidr.parse("fe80::1%eth0"));
  }
}
