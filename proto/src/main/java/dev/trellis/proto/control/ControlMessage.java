package dev.trellis.proto.control;

import com.fasterxml.jackson.annotation.JsonSubTypes;
import com.fasterxml.jackson.annotation.JsonTypeInfo;
import java.time.Instant;
import java.util.List;
import java.util.Set;

/**
 * What node and server say to each other inside the control channel: JSON objects with a "type"
 * field. Keys are base64 (standard, with padding) of 32 bytes, as `wg` prints them; endpoints are
 * "IP:port" or "[IPv6]:port".
 *
 * <pre>
 * node → server: Login, UpdateEndpoints, RotateNodeKey, Logout, Ping
 * server → node: LoginResult, PacketFilter then FullMap (once after a successful login), MapDelta,
 *                PacketFilter (when it changes), NetworkUpdate, Goodbye, Pong
 * </pre>
 */
@JsonTypeInfo(use = JsonTypeInfo.Id.NAME, property = "type")
@JsonSubTypes({
  @JsonSubTypes.Type(value = ControlMessage.Login.class, name = "login"),
  @JsonSubTypes.Type(value = ControlMessage.UpdateEndpoints.class, name = "update-endpoints"),
  @JsonSubTypes.Type(value = ControlMessage.RotateNodeKey.class, name = "rotate-node-key"),
  @JsonSubTypes.Type(value = ControlMessage.Logout.class, name = "logout"),
  @JsonSubTypes.Type(value = ControlMessage.Ping.class, name = "ping"),
  @JsonSubTypes.Type(value = ControlMessage.QualityReport.class, name = "quality-report"),
  @JsonSubTypes.Type(value = ControlMessage.LoginResult.class, name = "login-result"),
  @JsonSubTypes.Type(value = ControlMessage.FullMap.class, name = "full-map"),
  @JsonSubTypes.Type(value = ControlMessage.MapDelta.class, name = "map-delta"),
  @JsonSubTypes.Type(value = ControlMessage.NetworkUpdate.class, name = "network-update"),
  @JsonSubTypes.Type(value = ControlMessage.Goodbye.class, name = "goodbye"),
  @JsonSubTypes.Type(value = ControlMessage.Pong.class, name = "pong"),
  @JsonSubTypes.Type(value = ControlMessage.PacketFilter.class, name = "packet-filter"),
})
public sealed interface ControlMessage {

  /**
   * First message of every session. With an auth key it registers (or re-registers) the machine;
   * without one it resumes the machine's existing registration.
   */
  record Login(String nodeKey, String authKey, String hostname, String os, List<String> endpoints)
      implements ControlMessage {}

  /**
   * The node's candidate endpoints, the relay region it is homed on (null: none yet) and whether it
   * takes part in multicast ({@code trellis up --multicast}; null: unchanged).
   */
  record UpdateEndpoints(List<String> endpoints, String homeRelay, Boolean multicast)
      implements ControlMessage {
    public UpdateEndpoints(List<String> endpoints) {
      this(endpoints, null, null);
    }

    public UpdateEndpoints(List<String> endpoints, String homeRelay) {
      this(endpoints, homeRelay, null);
    }
  }

  record RotateNodeKey(String nodeKey) implements ControlMessage {}

  /**
   * The node's measured network quality to its peers, sent at most once a minute: for each peer (by
   * node id) the path in use ("direct" or "relay", then {@code relay} its region) and that path's
   * mean round trip, jitter (mean difference of consecutive round trips), both in milliseconds, the
   * share of pings lost (0..1), and the traffic with the peer since the last report in bits per
   * second, both ways together; a figure not measured yet is null.
   */
  record QualityReport(List<PeerQuality> peers) implements ControlMessage {
    /** Peers per report, so a report stays far below the 64 KiB message limit. */
    public static final int MAX_PEERS = 300;
  }

  record PeerQuality(
      long peer,
      String path,
      String relay,
      Double rttMs,
      Double jitterMs,
      Double loss,
      Double bitsPerSecond) {
    public PeerQuality(
        long peer, String path, String relay, Double rttMs, Double jitterMs, Double loss) {
      this(peer, path, relay, rttMs, jitterMs, loss, null);
    }
  }

  /** The node gives up its registration; it needs an auth key to come back. */
  record Logout() implements ControlMessage {}

  record Ping(long id) implements ControlMessage {}

  record Pong(long id) implements ControlMessage {}

  /** {@code error} and {@code code} are set when {@code ok} is false; {@code self} when true. */
  record LoginResult(boolean ok, String code, String error, NodeInfo self)
      implements ControlMessage {
    public static LoginResult success(NodeInfo self) {
      return new LoginResult(true, null, null, self);
    }

    public static LoginResult failure(String code, String error) {
      return new LoginResult(false, code, error, null);
    }
  }

  /** Everything the node needs: itself and every peer it may reach. */
  record FullMap(NodeInfo self, List<NodeInfo> peers, NetworkInfo network)
      implements ControlMessage {}

  /** Peers that joined or changed, and ids of peers that are gone. */
  record MapDelta(NodeInfo self, List<NodeInfo> upserted, List<Long> removed)
      implements ControlMessage {}

  /**
   * The network's settings changed (relay map, control URLs): replaces the FullMap's {@code
   * network}.
   */
  record NetworkUpdate(NetworkInfo network) implements ControlMessage {}

  /**
   * What the node accepts inbound, from the access policy: {@code rules} null means no policy is
   * set (everything is accepted); otherwise a packet that opens something new is accepted only when
   * a rule allows it, and replies to what the node opened always pass. Sent before the first
   * FullMap of a session (so a node never runs a fresh map with a stale filter) and whenever it
   * changes.
   */
  record PacketFilter(List<FilterRule> rules) implements ControlMessage {
    public static PacketFilter allowAll() {
      return new PacketFilter(null);
    }
  }

  /**
   * Packets from any of {@code srcs} (IPv4/IPv6 addresses or CIDR prefixes; "*" is any address) to
   * this node are accepted when their IP protocol is in {@code protos} (IANA numbers; empty means
   * TCP 6, UDP 17, ICMP 1 and ICMPv6 58) and, for TCP, UDP and SCTP, their destination port is in
   * one of {@code ports}. ICMP echo requests follow Tailscale: accepted from any source of any
   * rule, whatever its ports and protocols.
   */
  record FilterRule(List<String> srcs, List<PortRange> ports, List<Integer> protos) {}

  /** Ports {@code first} to {@code last}, inclusive; 0-65535 is every port. */
  record PortRange(int first, int last) {
    public static final PortRange ALL = new PortRange(0, 65535);
  }

  /** The server ends the session: expired, deleted, logged out, or replaced by a newer session. */
  record Goodbye(String reason) implements ControlMessage {}

  /** One node as the map shows it. */
  /**
   * One node as the map shows it; {@code homeRelay} is the region of the relay it receives on
   * (null: unknown); {@code multicast} whether it takes part in multicast (null: no).
   */
  record NodeInfo(
      long id,
      String hostname,
      String user,
      String nodeKey,
      List<String> addresses,
      List<String> endpoints,
      boolean online,
      Instant lastSeen,
      Set<String> tags,
      Instant expiry,
      boolean ephemeral,
      String homeRelay,
      Boolean multicast) {
    /** Whether the node takes part in multicast. */
    public boolean multicastMember() {
      return Boolean.TRUE.equals(multicast);
    }

    public NodeInfo(
        long id,
        String hostname,
        String user,
        String nodeKey,
        List<String> addresses,
        List<String> endpoints,
        boolean online,
        Instant lastSeen,
        Set<String> tags,
        Instant expiry,
        boolean ephemeral) {
      this(
          id, hostname, user, nodeKey, addresses, endpoints, online, lastSeen, tags, expiry,
          ephemeral, null, null);
    }
  }

  /**
   * The overlay's prefixes, for the node's routes; the relay map: every relay a node may use; and
   * the URLs of every coordinator replica, so a node whose server goes away logs in to another.
   */
  record NetworkInfo(
      String ipv4Prefix,
      String ipv6Prefix,
      List<RelayInfo> relays,
      List<String> controlUrls,
      DnsInfo dns,
      MulticastInfo multicast) {
    public NetworkInfo(String ipv4Prefix, String ipv6Prefix) {
      this(ipv4Prefix, ipv6Prefix, List.of(), List.of(), null, null);
    }

    public NetworkInfo(
        String ipv4Prefix, String ipv6Prefix, List<RelayInfo> relays, List<String> controlUrls) {
      this(ipv4Prefix, ipv6Prefix, relays, controlUrls, null, null);
    }

    public NetworkInfo withRelays(List<RelayInfo> r) {
      return new NetworkInfo(ipv4Prefix, ipv6Prefix, r, controlUrls, dns, multicast);
    }

    public NetworkInfo withControlUrls(List<String> urls) {
      return new NetworkInfo(ipv4Prefix, ipv6Prefix, relays, urls, dns, multicast);
    }

    public NetworkInfo withDns(DnsInfo d) {
      return new NetworkInfo(ipv4Prefix, ipv6Prefix, relays, controlUrls, d, multicast);
    }

    public NetworkInfo withMulticast(MulticastInfo m) {
      return new NetworkInfo(ipv4Prefix, ipv6Prefix, relays, controlUrls, dns, m);
    }
  }

  /**
   * Multicast over the overlay (null: off for the whole network): how much multicast one node may
   * send into it, per second, in datagrams and in bytes; more is dropped and counted.
   */
  record MulticastInfo(int packetsPerSecond, int bytesPerSecond) {}

  /**
   * Names in the overlay: every visible peer is {@code HOSTNAME.baseDomain} (and {@code HOSTNAME}
   * through the search list); {@code records} are extra names an admin configured; {@code
   * nameservers} answer the base domain's other names (null or empty: none). Null dns: no names.
   */
  record DnsInfo(String baseDomain, List<DnsRecord> records, List<String> nameservers) {}

  /**
   * An extra name: {@code type} A, AAAA or CNAME; {@code name} relative to the base domain or
   * ending in a dot.
   */
  record DnsRecord(String name, String type, String value) {}

  /**
   * One relay in the relay map: its region (a building), the login-server-style URL its {@code
   * /relay} is under (null: the login server the node uses), its static key (base64; null: not
   * pinned) and the UDP port of the STUN server on the same host (null: none). {@code mesh} true: a
   * relay of the cluster, which forwards to the nodes of every other such relay, so a node homed on
   * one needs no other connection; null or false: a relay on its own, reached directly for the
   * nodes homed on it.
   */
  record RelayInfo(String region, String url, String key, Integer stunPort, Boolean mesh) {
    public RelayInfo(String region, String url, String key, Integer stunPort) {
      this(region, url, key, stunPort, null);
    }

    public boolean meshed() {
      return Boolean.TRUE.equals(mesh);
    }

    public RelayInfo withMesh(boolean meshed) {
      return new RelayInfo(region, url, key, stunPort, meshed ? Boolean.TRUE : null);
    }
  }
}
