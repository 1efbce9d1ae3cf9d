package dev.trellis.dataplane.agent;

import java.time.Duration;

/**
 * The node agent's timers and limits, named once (the device's own are in {@link
 * dev.trellis.dataplane.wireguard.Timing}). Each says why it has its value.
 */
final class AgentTiming {
  private AgentTiming() {}

  // ---- control connection (ControlConnection) ----
  /** A login the server has not answered by then is given up and retried with backoff. */
  static final Duration LOGIN_TIMEOUT = Duration.ofSeconds(30);

  /** The server is pinged this often while logged in. */
  static final Duration CONTROL_PING_INTERVAL = Duration.ofSeconds(20);

  /** Silence longer than this (more than two pings unanswered) means a dead connection. */
  static final Duration CONTROL_SILENCE_LIMIT = Duration.ofSeconds(50);

  /**
   * First reconnect delay; it doubles per failed attempt (±20 % jitter) up to the maximum, which
   * bounds how long after a restarted server is ready its nodes are back (a few seconds).
   */
  static final Duration CONTROL_FIRST_BACKOFF = Duration.ofSeconds(1);

  static final Duration CONTROL_MAX_BACKOFF = Duration.ofSeconds(5);

  /** `up` answers when the first map is applied, or this long after the login at the latest. */
  static final Duration FIRST_MAP_WAIT = Duration.ofSeconds(5);

  /** How long a logout waits for the server to acknowledge before saying it could not tell it. */
  static final Duration LOGOUT_TIMEOUT = Duration.ofSeconds(5);

  // ---- endpoints (EndpointReporter) ----
  /** The host's addresses are compared with what the server was told this often. */
  static final Duration ENDPOINT_CHECK_INTERVAL = Duration.ofSeconds(5);

  /**
   * NAT mappings change rarely, but a roaming host's does: the reflexive address is asked this
   * often.
   */
  static final Duration REFLEXIVE_CHECK_INTERVAL = Duration.ofSeconds(20);

  static final Duration REFLEXIVE_FIRST_CHECK = Duration.ofSeconds(1);

  /** One STUN question: three Binding requests this far apart, answered within the timeout. */
  static final Duration STUN_RETRANSMIT = Duration.ofMillis(500);

  static final int STUN_ATTEMPTS = 3;
  static final Duration STUN_TIMEOUT = Duration.ofSeconds(3);

  /** The server's STUN port until the relay map carries it. */
  static final int STUN_PORT = 3478;

  // ---- relays (RelayConnections, RelayProbe, HomeRelayPolicy) ----
  /** Regions are measured again this often; the home moves only to a clearly faster one. */
  static final Duration RELAY_REPROBE_INTERVAL = Duration.ofMinutes(5);

  /** Another region must measure below this fraction of the home's latency to take over. */
  static final double RELAY_SWITCH_FACTOR = 0.7;

  /** One TCP connect of a region measurement; three are made and the best counts. */
  static final Duration RELAY_PROBE_CONNECT_TIMEOUT = Duration.ofSeconds(2);

  static final int RELAY_PROBE_ATTEMPTS = 3;

  /** {@code GET /relay/load} when choosing among a region's relays. */
  static final Duration RELAY_LOAD_TIMEOUT = Duration.ofSeconds(2);

  /**
   * A relay connection silent this long is pinged; silent this long it is taken for dead (cut off
   * without a reset).
   */
  static final Duration RELAY_SILENT_PING = Duration.ofSeconds(5);

  static final Duration RELAY_SILENT_DEAD = Duration.ofSeconds(15);

  /** Redial backoff: doubles from the first, up to the maximum, plus up to 20 % jitter. */
  static final Duration RELAY_FIRST_BACKOFF = Duration.ofMillis(500);

  static final Duration RELAY_MAX_BACKOFF = Duration.ofSeconds(15);

  /** The shortest redial pace a restarting relay may ask for. */
  static final Duration RELAY_MIN_RESTART_DELAY = Duration.ofMillis(100);

  // ---- paths (PeerPaths, PeerPath) ----
  /** How often path discovery looks at every peer. */
  static final Duration PATH_TICK = Duration.ofMillis(250);

  /** Probing while a peer has no direct path. */
  static final Duration PROBE_INTERVAL_NO_PATH = Duration.ofSeconds(2);

  /** Frequent enough to notice a lost path within 5 s; one small datagram per peer per second. */
  static final Duration PROBE_INTERVAL_DIRECT = Duration.ofSeconds(1);

  /** Without a pong for this long the direct path is considered gone: 3 missed probes. */
  static final Duration DIRECT_TIMEOUT = Duration.ofMillis(3_500);

  /**
   * A peer this node has sent no data to (keepalives aside) for this long is quiet: its direct path
   * is probed at {@link #PROBE_INTERVAL_QUIET} and kept for {@link #DIRECT_TIMEOUT_QUIET}
   * (Tailscale stops heartbeats after 45 s without traffic too). The next data packet makes it
   * active again at once: probed at once, and the active timeout counts from then.
   */
  static final Duration QUIET_AFTER = Duration.ofSeconds(45);

  /** Probing a quiet peer's direct path: one small datagram per candidate every 10 s. */
  static final Duration PROBE_INTERVAL_QUIET = Duration.ofSeconds(10);

  /** A quiet peer's direct path without a pong for this long is gone: 3 missed probes. */
  static final Duration DIRECT_TIMEOUT_QUIET = Duration.ofSeconds(35);

  /** A peer without a direct path is asked through the relay to probe back this often. */
  static final Duration CALL_ME_MAYBE_INTERVAL = Duration.ofSeconds(5);

  /**
   * Quality pings through the relay to an active peer without a direct path (a direct path is
   * measured by its own probes): one small message per peer this often, so its round trip, jitter
   * and loss are known. {@code TRELLIS_RELAY_PROBE_SECONDS} in the agent's environment sets it; 0
   * turns them off. A quiet peer is pinged {@link #RELAY_QUALITY_QUIET_FACTOR} times less often.
   */
  static final Duration RELAY_QUALITY_INTERVAL =
      Duration.ofSeconds(secondsFromEnvironment("TRELLIS_RELAY_PROBE_SECONDS", 5, 0, 3600));

  static final int RELAY_QUALITY_QUIET_FACTOR = 6;

  /**
   * How often the node reports its peers' quality to the server (the server keeps one point a
   * minute). {@code TRELLIS_QUALITY_REPORT_SECONDS} sets it (5 to 3600).
   */
  static final Duration QUALITY_REPORT_INTERVAL =
      Duration.ofSeconds(secondsFromEnvironment("TRELLIS_QUALITY_REPORT_SECONDS", 60, 5, 3600));

  /** {@code name}'s whole seconds in [min, max], or {@code otherwise} when unset or unusable. */
  static long secondsFromEnvironment(String name, long otherwise, long min, long max) {
    String v = System.getenv(name);
    if (v == null || v.isBlank()) {
      return otherwise;
    }
    try {
      long n = Long.parseLong(v.strip());
      if (n >= min && n <= max) {
        return n;
      }
    } catch (NumberFormatException ignored) {
      // falls through to the warning
    }
    org.slf4j.LoggerFactory.getLogger(AgentTiming.class)
        .warn("{}={} is not a number of seconds in {}..{}; using {}", name, v, min, max, otherwise);
    return otherwise;
  }

  /** An unanswered probe is forgotten after this long. */
  static final Duration PROBE_FORGET_AFTER = Duration.ofSeconds(10);

  /** `trellis ping` waits this long for its pong. */
  static final Duration PING_TIMEOUT = Duration.ofSeconds(5);

  /** WireGuard persistent keepalive on every peer, so NAT mappings stay open. */
  static final int PERSISTENT_KEEPALIVE_SECONDS = 25;

  // ---- local API ----
  /** A status that cannot be built within this long is reported as an unresponsive agent. */
  static final Duration STATUS_TIMEOUT = Duration.ofSeconds(5);
}
