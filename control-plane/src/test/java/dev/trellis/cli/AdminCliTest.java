package dev.trellis.cli;

import static dev.trellis.control.PersistentTestKit.randomKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.control.Result;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeDirectory;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.server.LocalAdminAccess;
import dev.trellis.control.server.ServerSettings;
import dev.trellis.control.server.TrellisServer;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.proto.control.ControlJson;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The admin commands, run in-process against a real server. */
class AdminCliTest {

  @TempDir static Path dataDir;
  @TempDir static Path elsewhere;
  private static TrellisServer server;
  private static String apiKey;

  @BeforeAll
  static void start() throws Exception {
    server = TrellisServer.start(ServerSettings.load(null, dataDir, "127.0.0.1:0"));
    apiKey = LocalAdminAccess.read(dataDir).apiKey();
  }

  @AfterAll
  static void stop() {
    server.close();
  }

  record Run(int exit, String out, String err) {
    List<String> lines() {
      return out.lines().toList();
    }

    String last() {
      return lines().getLast();
    }
  }

  static Run trellis(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine cli = new CommandLine(new Trellis());
    cli.setOut(new PrintWriter(out, true));
    cli.setErr(new PrintWriter(err, true));
    int exit = cli.execute(args);
    return new Run(exit, out.toString(), err.toString());
  }

  /** With --server and --api-key. */
  static Run remote(String... args) {
    List<String> all = new ArrayList<>(List.of(args));
    all.addAll(List.of("--server", server.url(), "--api-key", apiKey));
    return trellis(all.toArray(String[]::new));
  }

  /** Through the server's cli.json. */
  static Run local(String... args) {
    List<String> all = new ArrayList<>(List.of(args));
    all.addAll(List.of("--data-dir", dataDir.toString()));
    return trellis(all.toArray(String[]::new));
  }

  static Run succeeds(Run run) {
    assertEquals(0, run.exit(), run.toString());
    assertEquals("", run.err(), run.toString());
    return run;
  }

  /** Exit 1 and exactly one line on stderr, containing {@code expected}. */
  static Run fails(String expected, Run run) {
    assertEquals(1, run.exit(), run.toString());
    assertEquals(1, run.err().lines().count(), run.err());
    assertTrue(run.err().contains(expected), run.err());
    return run;
  }

  static NodeRecord register(String user, String hostname) throws Exception {
    var s = server.services();
    var scheduler = server.system().scheduler();
    String machineKey = randomKey();
    var allocation =
        AskPattern.<AddressAllocator.Command, Result<AddressAllocator.Allocation>>ask(
                s.allocator(),
                r -> new AddressAllocator.Allocate(machineKey, hostname, r),
                Duration.ofSeconds(10),
                scheduler)
            .toCompletableFuture()
            .get(10, TimeUnit.SECONDS)
            .orElseThrow();
    NodeRecord node =
        AskPattern.<NodeDirectory.Command, Result<NodeRecord>>ask(
                s.nodes(),
                r ->
                    new NodeDirectory.Forward(
                        allocation.nodeId(),
                        new NodeEntity.Register(
                            machineKey,
                            randomKey(),
                            user,
                            allocation.hostname(),
                            allocation.ipv4(),
                            allocation.ipv6(),
                            Set.of(),
                            false,
                            null,
                            Instant.now(),
                            r)),
                Duration.ofSeconds(10),
                scheduler)
            .toCompletableFuture()
            .get(10, TimeUnit.SECONDS)
            .orElseThrow();
    s.users().tell(new UserRegistry.AttachNode(user, node.id(), server.system().ignoreRef()));
    return node;
  }

  @Test
  void users() throws Exception {
    assertTrue(
        succeeds(remote("users", "create", "c-alice")).out().contains("created user c-alice"));
    succeeds(local("users", "create", "c-bob"));
    fails("user c-alice already exists", remote("users", "create", "c-alice"));
    fails("invalid user name", local("users", "create", "Bad Name"));

    Run table = succeeds(local("users", "list"));
    assertTrue(table.lines().getFirst().matches("ID\\s+NAME\\s+NODES\\s+CREATED"), table.out());
    String aliceRow =
        table.lines().stream().filter(l -> l.contains("c-alice")).findFirst().orElseThrow();
    // Columns line up under the header.
    assertEquals(table.lines().getFirst().indexOf("NAME"), aliceRow.indexOf("c-alice"));

    JsonNode json = ControlJson.MAPPER.readTree(succeeds(remote("users", "list", "--json")).out());
    assertTrue(json.isArray());
    assertTrue(json.toString().contains("\"c-bob\""));

    succeeds(remote("users", "delete", "c-bob"));
    fails("no user c-bob", remote("users", "delete", "c-bob"));
    assertFalse(succeeds(local("users", "list")).out().contains("c-bob"));
  }

  @Test
  void authKeys() throws Exception {
    succeeds(remote("users", "create", "a-alice"));
    Run created =
        succeeds(
            remote(
                "authkeys",
                "create",
                "--user",
                "a-alice",
                "--reusable",
                "--ephemeral",
                "--expiration",
                "24h",
                "--tag",
                "tag:robot",
                "--tag",
                "tag:arm"));
    assertTrue(created.last().startsWith("trellis-auth-"), created.out());
    assertTrue(created.out().contains("reusable, ephemeral"), created.out());
    String id = created.last().substring("trellis-auth-".length(), "trellis-auth-".length() + 12);

    Run single = succeeds(local("authkeys", "create", "--user", "a-alice", "--expiration", "PT1H"));
    assertTrue(single.last().startsWith("trellis-auth-"));
    assertTrue(single.out().contains("single-use"));

    fails("no user a-nobody", remote("authkeys", "create", "--user", "a-nobody"));
    fails("invalid tag", remote("authkeys", "create", "--user", "a-alice", "--tag", "robot"));
    fails("expiration", remote("authkeys", "create", "--user", "a-alice", "--expiration", "soon"));

    Run list = succeeds(local("authkeys", "list", "--user", "a-alice"));
    assertEquals(3, list.lines().size(), list.out());
    assertTrue(list.lines().getFirst().startsWith("ID"));
    assertTrue(list.out().contains("tag:arm,tag:robot"), list.out());
    JsonNode json =
        ControlJson.MAPPER.readTree(succeeds(remote("authkeys", "list", "--json")).out());
    assertTrue(json.isArray() && json.size() >= 2);
    fails("no user a-nobody", remote("authkeys", "list", "--user", "a-nobody"));

    assertTrue(succeeds(remote("authkeys", "expire", id)).out().contains("expired auth key " + id));
    String row =
        succeeds(local("authkeys", "list", "--user", "a-alice")).lines().stream()
            .filter(l -> l.startsWith(id))
            .findFirst()
            .orElseThrow();
    assertTrue(row.contains("expired"), row);
    fails("no auth key nosuchkey000", remote("authkeys", "expire", "nosuchkey000"));
  }

  @Test
  void nodes() throws Exception {
    succeeds(remote("users", "create", "n-alice"));
    NodeRecord one = register("n-alice", "cli-alpha");
    NodeRecord two = register("n-alice", "cli-beta");

    Run table = succeeds(local("nodes", "list", "--user", "n-alice"));
    assertEquals(3, table.lines().size(), table.out());
    assertTrue(table.lines().getFirst().startsWith("ID"), table.out());
    assertTrue(table.out().contains("cli-alpha") && table.out().contains(one.ipv4()), table.out());
    JsonNode json =
        ControlJson.MAPPER.readTree(
            succeeds(remote("nodes", "list", "--json", "--user", "n-alice")).out());
    assertEquals(2, json.size());
    assertEquals("cli-beta", json.get(1).path("hostname").asText());

    fails("already used", remote("nodes", "rename", String.valueOf(two.id()), "cli-alpha"));
    assertTrue(
        succeeds(remote("nodes", "rename", String.valueOf(two.id()), "cli-gamma"))
            .out()
            .contains("cli-gamma"));
    assertTrue(
        succeeds(
                local("nodes", "tag", String.valueOf(two.id()), "--tag", "tag:x", "--tag", "tag:y"))
            .out()
            .contains("tag:x,tag:y"));
    fails("invalid tag", remote("nodes", "tag", String.valueOf(two.id()), "--tag", "x"));
    fails("--tag", remote("nodes", "tag", String.valueOf(two.id())));
    succeeds(remote("nodes", "expire", String.valueOf(one.id())));
    assertTrue(succeeds(local("nodes", "list", "--user", "n-alice")).out().contains("expired"));

    fails("still has 2 nodes", remote("users", "delete", "n-alice"));
    succeeds(remote("nodes", "delete", String.valueOf(one.id())));
    succeeds(local("nodes", "delete", String.valueOf(two.id())));
    fails("no node " + one.id(), remote("nodes", "delete", String.valueOf(one.id())));
    assertEquals(1, succeeds(local("nodes", "list", "--user", "n-alice")).lines().size());
    succeeds(remote("users", "delete", "n-alice"));
  }

  @Test
  void policy() throws Exception {
    succeeds(remote("users", "create", "p-ops"));
    succeeds(remote("users", "create", "p-guest"));
    NodeRecord robot = register("p-ops", "p-robot");
    String text =
        """
        // The team's robots take ssh from their operators.
        {
          "tagOwners": {"tag:p-team": ["p-ops@"]},
          "acls": [
            {"action": "accept", "src": ["p-ops@"], "dst": ["tag:p-team:22"]},
          ],
          "tests": [{"src": "p-ops@", "accept": ["tag:p-team:22"], "deny": ["tag:p-team:80"]}],
        }
        """;
    Path good = elsewhere.resolve("policy.hujson");
    Files.writeString(good, text);
    Path failing = elsewhere.resolve("failing.hujson");
    Files.writeString(failing, text.replace("\"tag:p-team:80\"", "\"tag:p-team:22\""));
    Path broken = elsewhere.resolve("broken.hujson");
    Files.writeString(broken, "{\n  \"acls\": [\n    {\"action\" \"accept\"}\n  ]\n}\n");

    // check needs no server.
    assertEquals(
        good + ": valid: 1 rule, 1 test passed",
        succeeds(trellis("policy", "check", good.toString())).out().strip());
    fails(broken + ": line 3: not valid HuJSON", trellis("policy", "check", broken.toString()));
    try {
      assertTrue(succeeds(local("policy", "set", good.toString())).out().contains("in force"));
      assertEquals(text, succeeds(local("policy", "get")).out());
      fails(
          "test 1 fails: p-ops@ should not reach tag:p-team:22/tcp",
          local("policy", "set", failing.toString()));
      fails("line 3", local("policy", "set", broken.toString()));
      assertEquals(
          text, succeeds(local("policy", "get")).out(), "a refused policy changes nothing");

      fails(
          "tag:p-other is not defined in the policy's tagOwners",
          local("nodes", "tag", Long.toString(robot.id()), "--tag", "tag:p-other"));
      succeeds(local("nodes", "tag", Long.toString(robot.id()), "--tag", "tag:p-team"));
      fails(
          "user p-guest does not own tag:p-team",
          local("authkeys", "create", "--user", "p-guest", "--tag", "tag:p-team"));
      succeeds(local("authkeys", "create", "--user", "p-ops", "--tag", "tag:p-team"));

      String allowed = succeeds(local("policy", "why", "p-ops@", "p-robot:22")).out();
      assertTrue(
          allowed.startsWith("allowed: p-ops@ -> p-robot:22/tcp by acls[0] (line 5)"), allowed);
      String denied = succeeds(local("policy", "why", "p-ops@", "p-robot:80")).out();
      assertTrue(denied.startsWith("denied: no rule of policy version"), denied);
      fails("unknown selector \"nobody\"", local("policy", "why", "nobody", "p-robot:22"));
    } finally {
      succeeds(local("policy", "clear"));
    }
    assertTrue(
        succeeds(local("policy", "why", "p-guest@", "p-robot:80"))
            .out()
            .contains("everything is allowed"));
  }

  @Test
  void apiKeys() throws Exception {
    Run created = succeeds(local("apikeys", "create", "--expiration", "90d"));
    assertTrue(created.last().startsWith("trellis-api-"), created.out());
    String secret = created.last();
    String prefix = secret.substring("trellis-api-".length(), "trellis-api-".length() + 12);

    // The new key works on its own.
    succeeds(trellis("users", "list", "--server", server.url(), "--api-key", secret));
    assertTrue(succeeds(remote("apikeys", "list")).out().contains(prefix));
    JsonNode json =
        ControlJson.MAPPER.readTree(succeeds(remote("apikeys", "list", "--json")).out());
    assertTrue(json.toString().contains(prefix));

    succeeds(remote("apikeys", "expire", prefix));
    fails("expired", trellis("users", "list", "--server", server.url(), "--api-key", secret));
    fails("no API key nosuchprefix", remote("apikeys", "expire", "nosuchprefix"));
  }

  @Test
  void clusterStatusAndRelays() throws Exception {
    Run status = succeeds(remote("cluster", "status"));
    assertTrue(status.lines().get(0).startsWith("MEMBER"), status.out());
    assertTrue(
        status.out().contains("(this)")
            && status.out().contains("control,relay")
            && status.out().contains("Up"),
        status.out());
    Run json = succeeds(local("cluster", "status", "--json"));
    assertTrue(
        json.out().contains("\"members\"") && json.out().contains("\"reachable\" : true"),
        json.out());
    // The server's relay reaches the receptionist asynchronously after start: wait for its row.
    Run relays = succeeds(remote("relays", "list"));
    for (long deadline = System.nanoTime() + 30_000_000_000L;
        relays.lines().size() < 2 && System.nanoTime() < deadline; ) {
      Thread.sleep(200);
      relays = succeeds(remote("relays", "list"));
    }
    assertTrue(relays.lines().get(0).startsWith("REGION"), relays.out());
    assertTrue(
        relays.lines().size() > 1 && relays.lines().get(1).startsWith("default"), relays.out());
  }

  @Test
  void findingTheServer() throws Exception {
    fails(
        "no server found: pass --server and --api-key, or run on the server host (looked for "
            + elsewhere.resolve("cli.json")
            + ")",
        trellis("users", "list", "--data-dir", elsewhere.toString()));
    Path config = elsewhere.resolve("trellis.conf");
    Files.writeString(config, "trellis.data-dir = \"" + dataDir + "\"\n");
    succeeds(trellis("users", "list", "--config", config.toString()));
    fails(
        "cannot reach the Trellis server at http://127.0.0.1:1",
        trellis("users", "list", "--server", "http://127.0.0.1:1", "--api-key", apiKey));
    fails(
        "API key refused",
        trellis("users", "list", "--server", server.url(), "--api-key", "garbage"));
    fails("pass both --server and --api-key", trellis("users", "list", "--server", server.url()));
  }
}
