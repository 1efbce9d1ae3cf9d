package dev.trellis.system.control;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.system.harness.FailureDump;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisServerProcess;
import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.Metrics;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Ping;
import dev.trellis.system.netns.Tools;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A robot whose host has IPv6 disabled ({@code net.ipv6.conf.all.disable_ipv6=1}, common on lab
 * machines) still gets full IPv4 service over the overlay, direct and relayed: its interface gets
 * the IPv4 address and route, the agent says once that IPv6 is off, and nothing else fails. Needs
 * root; skipped visibly otherwise.
 */
@ExtendWith(FailureDump.class)
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class Ipv6DisabledHostTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  @Test
  void aHostWithoutIpv6GetsIpv4DirectAndRelayed() {
    try (ControlLab lab = ControlLab.create()) {
      TrellisServerProcess server = lab.server();
      server.start();
      server.admin("users", "create", "lab").orThrow();
      String key = server.createReusableAuthKey("lab");
      TrellisAgentProcess v4only = lab.newAgent("v4", "robot-v4only");
      TrellisAgentProcess dual = lab.newAgent("v6", "robot-dual");
      NetworkNamespace ns = v4only.namespace();
      ns.exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1");
      ns.exec("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1");
      v4only.start();
      dual.start();
      v4only.up(server.url(), key);
      dual.up(server.url(), key);

      String iface = v4only.interfaceName();
      String v4 = TrellisAgentProcess.ipv4(v4only.status().path("self"));
      Await.until(
          "the IPv4 overlay address and route on " + iface + " although IPv6 is off",
          WAIT,
          () ->
              ns.exec(Tools.ip(), "-4", "addr", "show", "dev", iface).stdout().contains(v4 + "/32")
                  && ns.exec(Tools.ip(), "-4", "route", "show", "dev", iface)
                      .stdout()
                      .contains("100.64.0.0/10"));
      assertFalse(
          ns.run(Tools.ip(), "-6", "addr", "show", "dev", iface).stdout().contains("fd7a:"),
          "no IPv6 overlay address on a host with IPv6 off");
      Await.until(
          "the agent saying once that IPv6 is off",
          WAIT,
          () -> v4only.process().output().contains("IPv6 is off on " + iface));
      assertTrue(
          v4only.process().output().indexOf("IPv6 is off")
              == v4only.process().output().lastIndexOf("IPv6 is off"),
          "said once, not on every map:\n" + v4only.process().output());
      JsonNode status = v4only.status();
      assertTrue(
          status.path("lastError").isNull() || status.path("lastError").isMissingNode(),
          "IPv6 being off is not an error: " + status.path("lastError"));

      // Direct: both hosts on one LAN, UDP allowed.
      Await.until(
          "robot-v4only sees robot-dual online",
          WAIT,
          () -> TrellisAgentProcess.connectedWithPeerOnline(v4only.statusNow(), "robot-dual"));
      String dualV4 = TrellisAgentProcess.ipv4(dual.status().path("self"));
      pings(ns, dualV4, "v4only -> dual, direct");
      pings(dual.namespace(), v4, "dual -> v4only, direct");
      Await.until(
          "a direct path from robot-v4only to robot-dual",
          WAIT,
          () -> "direct".equals(v4only.pathTo(dual)));

      // Relayed: the IPv6-less host's UDP is dropped, only TCP (to the server and its relay) gets
      // through.
      String iptables = Tools.require("iptables");
      ns.exec(iptables, "-A", "OUTPUT", "-p", "udp", "-j", "DROP");
      ns.exec(iptables, "-A", "INPUT", "-p", "udp", "-j", "DROP");
      Await.until(
          "robot-v4only reaching robot-dual through the relay",
          WAIT,
          () -> "relay".equals(v4only.pathTo(dual)));
      pings(ns, dualV4, "v4only -> dual, relayed");
      pings(dual.namespace(), v4, "dual -> v4only, relayed");
    }
  }

  private static void pings(NetworkNamespace from, String to, String what) {
    Ping.Result r =
        Await.value(
            "ping " + what + " (" + to + ")",
            WAIT,
            () -> Ping.ping(from, to),
            Ping.Result::allReplied);
    Metrics.report(
        "ipv6-disabled host: ping %s: %d/%d replies, avg rtt %.2f ms",
        what, r.received(), r.transmitted(), r.rttAvgMs());
  }
}
