package dev.trellis.dataplane.agent;

import java.time.Instant;
import java.util.List;
import java.util.Map;

/**
 * What `trellis status --json` prints and the local API's "status" command answers. {@code
 * backendState}: "NeedsLogin" (never logged in, logged out, or the server refused to resume),
 * "Stopped" (after `trellis down`), "Running" (logged in and wanting to be connected; {@code
 * connected} tells whether the server is reachable right now).
 */
public record AgentStatus(
    String backendState,
    String loginServer,
    boolean connected,
    String lastError,
    String interfaceName,
    int listenPort,
    Self self,
    List<Peer> peers,
    Filter filter,
    Names names,
    Multicast multicast) {
  public static final String RUNNING = "Running";
  public static final String STOPPED = "Stopped";
  public static final String NEEDS_LOGIN = "NeedsLogin";

  /**
   * The inbound packet filter: {@code policy} whether the server's access policy is in force
   * (false: every packet from a peer is accepted), {@code rules} how many rules it has, {@code
   * dropped} how many inbound packets it refused since the agent started, and {@code droppedBy} the
   * same by reason ("no-rule", "malformed").
   */
  public record Filter(boolean policy, int rules, long dropped, Map<String, Long> droppedBy) {}

  /**
   * Names on this node: {@code domain} the base domain peers are named under (null: names are off),
   * {@code mode} how the host's resolver sends them here ("resolved": systemd-resolved's per-link
   * settings, "file": /etc/resolv.conf), and what the resolver did since the agent started.
   */
  public record Names(
      String domain,
      String mode,
      long answered,
      long forwarded,
      long malformed,
      long oversized,
      long foreign) {
    public static final Names OFF = new Names(null, null, 0, 0, 0, 0, 0);

    /** Whether {@code asked} names {@code hostname}: bare, or fully qualified (a final dot too). */
    public boolean names(String asked, String hostname) {
      if (asked == null || hostname == null) return false;
      String a = asked.endsWith(".") ? asked.substring(0, asked.length() - 1) : asked;
      return a.equalsIgnoreCase(hostname)
          || (domain != null && a.equalsIgnoreCase(hostname + "." + domain));
    }
  }

  /**
   * Multicast on this node: {@code member} whether it takes part now (opted in, and the network
   * allows it), {@code peers} how many peers get its multicast, and since the agent started: {@code
   * sent} datagrams sent into the overlay and the {@code copies} made of them, {@code received}
   * datagrams taken from peers, and drops by reason (over the rate, a loop, out of scope, refused
   * because this node does not take part).
   */
  public record Multicast(
      boolean member, int peers, long sent, long copies, long received, Map<String, Long> dropped) {
    public static final Multicast OFF = new Multicast(false, 0, 0, 0, 0, Map.of());
  }

  public record Self(String hostname, List<String> addresses, String nodeKey, boolean online) {}

  /**
   * The map's view of a peer plus the device's: {@code endpoint} is the UDP endpoint WireGuard
   * knows; {@code path} is "direct" or "relay" (then {@code relay} names the region). The path's
   * quality from the last 30 path-discovery pings on it: {@code rttMs} the mean round trip, {@code
   * jitterMs} the mean difference between consecutive round trips, {@code loss} the share lost
   * (0..1); null when nothing was measured on this path yet. {@code active}: this node sent the
   * peer data in the last 45 s (keepalives and handshakes do not count).
   */
  public record Peer(
      long id,
      String hostname,
      List<String> addresses,
      String nodeKey,
      boolean online,
      Instant lastSeen,
      List<String> endpoints,
      String endpoint,
      Instant lastHandshake,
      long rxBytes,
      long txBytes,
      String path,
      String relay,
      Double rttMs,
      Double jitterMs,
      Double loss,
      boolean active) {}
}
