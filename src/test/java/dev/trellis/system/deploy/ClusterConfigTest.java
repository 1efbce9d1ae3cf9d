package dev.trellis.system.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.control.cluster.ClusterSettings;
import dev.trellis.control.policy.Policy;
import dev.trellis.control.policy.Principal;
import dev.trellis.control.relay.RelaySettings;
import dev.trellis.control.server.ServerSettings;
import dev.trellis.system.harness.Prometheus;
import dev.trellis.system.netns.WgImpl;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The three-building example in {@code cluster-config/}: the Ansible playbook passes {@code
 * ansible-playbook --syntax-check}, and every building's configuration — the static files and the
 * ones the playbook's template renders from the inventory — loads in the server with the cluster,
 * journal and relay map the README describes. Skipped, with the reason, without ansible-playbook
 * (CI installs ansible-core).
 */
class ClusterConfigTest {
  private static final Map<String, String> BUILDINGS =
      Map.of("a", "10.10.1.10", "b", "10.10.2.10", "c", "10.10.3.10");
  private static final Path CONFIG = WgImpl.home().resolve("cluster-config");

  @TempDir Path tmp;

  private static String ansiblePlaybook() {
    for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
      Path p = Path.of(dir, "ansible-playbook");
      if (Files.isExecutable(p)) {
        return p.toString();
      }
    }
    Assumptions.abort(
        "ansible-playbook is not installed (apt-get install ansible-core): skipping the playbook checks");
    return null;
  }

  private static String run(List<String> command) throws Exception {
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(120, TimeUnit.SECONDS), "timed out: " + command);
    assertEquals(0, p.exitValue(), String.join(" ", command) + " failed:\n" + out);
    return out;
  }

  @Test
  void playbookPassesTheSyntaxCheck() throws Exception {
    String out =
        run(
            List.of(
                ansiblePlaybook(),
                "--syntax-check",
                "-i",
                CONFIG.resolve("ansible/inventory.ini").toString(),
                CONFIG.resolve("ansible/site.yml").toString()));
    assertTrue(out.contains("playbook:"), out);
  }

  @Test
  void staticBuildingConfigsLoad() throws Exception {
    for (var b : BUILDINGS.entrySet()) {
      check(CONFIG.resolve("campus/building-" + b.getKey() + ".conf"), b.getKey(), b.getValue());
    }
  }

  @Test
  void renderedBuildingConfigsLoad() throws Exception {
    run(
        List.of(
            ansiblePlaybook(),
            "-i",
            CONFIG.resolve("ansible/inventory.ini").toString(),
            CONFIG.resolve("ansible/render-configs.yml").toString(),
            "-e",
            "render_dir=" + tmp));
    Files.copy(CONFIG.resolve("campus/common.conf"), tmp.resolve("common.conf"));
    for (var b : BUILDINGS.entrySet()) {
      check(tmp.resolve("building-" + b.getKey() + ".conf"), b.getKey(), b.getValue());
    }
    // The teams' policy the playbook puts in force: it loads, its own tests pass, and it keeps the
    // inventory's two teams apart while the admins reach both.
    Policy policy = Policy.parse(Files.readString(tmp.resolve("policy.hujson")));
    Principal a = Principal.node("robot-1", "lab", Set.of("tag:team-a"), "100.64.0.1");
    Principal a2 = Principal.node("robot-2", "lab", Set.of("tag:team-a"), "100.64.0.2");
    Principal b = Principal.node("robot-3", "lab", Set.of("tag:team-b"), "100.64.0.3");
    Principal admin = Principal.node("laptop", "alice", Set.of(), "100.64.0.9");
    assertTrue(policy.decide(a, a2, 6, 11311).allowed());
    assertFalse(policy.decide(a, b, 6, 11311).allowed());
    assertFalse(policy.decide(b, a, 17, 7400).allowed());
    assertTrue(policy.decide(admin, b, 6, 22).allowed());
    assertFalse(policy.decide(b, admin, 6, 22).allowed());
    assertEquals(2, policy.tests().size());

    // The monitoring host's Prometheus: promtool accepts it, and it scrapes every building's server
    // where that server serves its metrics, and the robot that serves its own.
    Path prometheus = tmp.resolve("prometheus.yml");
    String promtool =
        run(List.of(Prometheus.binary("promtool"), "check", "config", prometheus.toString()));
    assertTrue(promtool.contains("SUCCESS"), promtool);
    String scrape = Files.readString(prometheus);
    for (String address : BUILDINGS.values()) {
      assertTrue(scrape.contains("\"" + address + ":9090\""), scrape);
    }
    assertTrue(scrape.contains("\"10.20.1.21:9101\""), scrape);
  }

  private void check(Path file, String building, String address) {
    ServerSettings s = ServerSettings.load(file, tmp.resolve("data-" + building), null);
    assertEquals("http://" + address + ":8080", s.serverUrl(), file.toString());
    assertEquals(address + ":9090", s.metricsListen(), file.toString());
    assertTrue(s.journal().postgres(), file.toString());
    assertEquals("jdbc:postgresql://10.10.1.10:5432/trellis", s.journal().url(), file.toString());
    ClusterSettings cluster = ClusterSettings.from(s.config());
    assertEquals(address, cluster.host(), file.toString());
    assertEquals(25520, cluster.port(), file.toString());
    assertEquals(
        List.of(
            "pekko://trellis@10.10.1.10:25520",
            "pekko://trellis@10.10.2.10:25520",
            "pekko://trellis@10.10.3.10:25520"),
        cluster.seedNodes(),
        file.toString());
    RelaySettings relay = RelaySettings.from(s.config());
    // Only its own relay is configured: the other buildings' come from live cluster membership (and
    // leave with it).
    assertEquals(List.of(), relay.others(), file.toString());
    assertEquals("building-" + building, relay.ownEntry("KEY", 3478).region());
    assertEquals("http://" + address + ":8080", relay.ownEntry("KEY", 3478).url());
  }
}
