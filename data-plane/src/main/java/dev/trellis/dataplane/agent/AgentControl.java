package dev.trellis.dataplane.agent;

import dev.trellis.proto.control.ControlMessage.NodeInfo;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;

/** What the local API asks of the agent; the agent implements it, tests stub it. */
public interface AgentControl {
  /** The outcome of up/down/logout: {@code error} set when not ok; {@code self} after a login. */
  record Outcome(boolean ok, String error, NodeInfo self) {
    public static Outcome success(NodeInfo self) {
      return new Outcome(true, null, self);
    }

    public static Outcome failure(String error) {
      return new Outcome(false, error, null);
    }
  }

  /** Logs in; null arguments fall back to the saved login server and hostname. */
  default CompletableFuture<Outcome> up(String loginServer, String authKey, String hostname) {
    return up(loginServer, authKey, hostname, progress -> {});
  }

  /**
   * The same; while the server cannot finish the login yet it keeps trying, telling {@code
   * progress} why it waits.
   */
  CompletableFuture<Outcome> up(
      String loginServer, String authKey, String hostname, Consumer<String> progress);

  /**
   * This node's preferences, saved and applied at once; null leaves one as it is. {@code
   * acceptDns}: whether this host's resolver is pointed at the node's for the network's names (on
   * by default). {@code multicast}: whether the node takes part in multicast (off by default).
   */
  CompletableFuture<Outcome> setPreferences(Boolean acceptDns, Boolean multicast);

  CompletableFuture<Outcome> down();

  CompletableFuture<Outcome> logout();

  AgentStatus status();

  /** The node's metrics in Prometheus' text format (`trellis metrics`). */
  default String metrics() {
    throw new IllegalStateException("metrics are not supported here");
  }

  /** What `trellis netcheck` reports. */
  record NetcheckReport(
      boolean udp,
      String reflexiveAddress,
      String udpError,
      String homeRelay,
      List<RelayLatency> relays) {}

  /** One relay region as netcheck measured it: latency in ms, or null and why. */
  record RelayLatency(String region, String url, Double latencyMillis, String error) {}

  default CompletableFuture<NetcheckReport> netcheck() {
    return CompletableFuture.failedFuture(
        new IllegalStateException("netcheck is not supported here"));
  }

  /** A path-discovery ping to a peer (hostname or overlay address) over its current path. */
  default CompletableFuture<PeerPaths.PingResult> ping(String peer) {
    return CompletableFuture.failedFuture(new IllegalStateException("ping is not supported here"));
  }
}
