package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.proto.control.ControlMessage.NodeInfo;
import dev.trellis.proto.wireguard.AllowedIps;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the WireGuard device's peers equal to the network map, touching only what changed: an
 * unchanged peer keeps its session, timers and counters through full maps and deltas alike, so
 * reconnecting to the server or another node joining never interrupts traffic. Not thread-safe: the
 * agent calls it from its one loop thread.
 */
public final class PeerReconciler {
  private static final Logger LOG = LoggerFactory.getLogger(PeerReconciler.class);

  /** What we last configured for one peer, to tell what a new map changes. */
  private record Applied(
      String nodeKey, Set<AllowedIps.Prefix> allowedIps, InetSocketAddress endpoint) {}

  private final Device device;

  /** Which address families this host can send from; picks the peer endpoint we try first. */
  private final Predicate<InetAddress> usableFamily;

  private final Map<Long, NodeInfo> nodes = new LinkedHashMap<>();
  private final Map<Long, Applied> applied = new HashMap<>();

  public PeerReconciler(Device device, Predicate<InetAddress> usableFamily) {
    this.device = device;
    this.usableFamily = usableFamily;
  }

  /** The peers as the map last described them, by node id. */
  public Collection<NodeInfo> nodes() {
    return List.copyOf(nodes.values());
  }

  /** A full map: every listed peer upserted, every other peer removed. */
  public void replaceAll(List<NodeInfo> peers) {
    Set<Long> keep = new LinkedHashSet<>();
    for (NodeInfo peer : peers == null ? List.<NodeInfo>of() : peers) {
      keep.add(peer.id());
    }
    for (Long id : new ArrayList<>(nodes.keySet())) {
      if (!keep.contains(id)) {
        remove(id);
      }
    }
    for (NodeInfo peer : peers == null ? List.<NodeInfo>of() : peers) {
      upsert(peer);
    }
  }

  public void apply(List<NodeInfo> upserted, List<Long> removed) {
    for (Long id : removed == null ? List.<Long>of() : removed) {
      remove(id);
    }
    for (NodeInfo peer : upserted == null ? List.<NodeInfo>of() : upserted) {
      upsert(peer);
    }
  }

  public void upsert(NodeInfo node) {
    byte[] key = decodeKey(node.nodeKey());
    Applied before = applied.get(node.id());
    if (before != null && !before.nodeKey().equals(node.nodeKey())) {
      // The node rotated its key: to WireGuard that is another peer.
      device.removePeer(decodeKey(before.nodeKey()));
      applied.remove(node.id());
      before = null;
    }
    nodes.put(node.id(), node);
    if (key == null) {
      LOG.warn(
          "map lists node "
              + node.id()
              + " ("
              + node.hostname()
              + ") with an unusable key '"
              + node.nodeKey()
              + "'; skipped");
      return;
    }
    Set<AllowedIps.Prefix> allowed = hostPrefixes(node.addresses());
    InetSocketAddress endpoint = chooseEndpoint(node.endpoints());
    if (before == null || !device.hasPeer(key)) {
      if (!device.addPeer(key)) {
        LOG.warn("map lists our own node key as peer " + node.hostname() + "; skipped");
        return;
      }
      device.replacePeerAllowedIps(key);
      for (AllowedIps.Prefix prefix : allowed) {
        device.addPeerAllowedIp(key, prefix);
      }
      if (endpoint != null) {
        device.setPeerEndpoint(key, endpoint);
      }
      device.setPeerPersistentKeepalive(key, AgentTiming.PERSISTENT_KEEPALIVE_SECONDS);
      applied.put(node.id(), new Applied(node.nodeKey(), allowed, endpoint));
      return;
    }
    if (!before.allowedIps().equals(allowed)) {
      device.replacePeerAllowedIps(key);
      for (AllowedIps.Prefix prefix : allowed) {
        device.addPeerAllowedIp(key, prefix);
      }
    }
    // Only a changed map endpoint overrides the device's: the device follows a roaming peer
    // to wherever its authenticated packets come from, and that must survive unrelated deltas.
    if (endpoint != null && !endpoint.equals(before.endpoint())) {
      device.setPeerEndpoint(key, endpoint);
    }
    applied.put(
        node.id(),
        new Applied(node.nodeKey(), allowed, endpoint == null ? before.endpoint() : endpoint));
  }

  public void remove(long id) {
    nodes.remove(id);
    Applied gone = applied.remove(id);
    if (gone != null) {
      device.removePeer(decodeKey(gone.nodeKey()));
    }
  }

  /** Removes every peer we configured (down, logout, login refused). */
  public void clear() {
    for (Long id : new ArrayList<>(nodes.keySet())) {
      remove(id);
    }
  }

  static byte[] decodeKey(String base64) {
    if (base64 == null) {
      return null;
    }
    try {
      byte[] key = Base64.getDecoder().decode(base64.strip());
      return key.length == 32 ? key : null;
    } catch (IllegalArgumentException e) {
      return null;
    }
  }

  /** Each overlay address as a host route; a "/len" suffix from the server is ignored. */
  static Set<AllowedIps.Prefix> hostPrefixes(List<String> addresses) {
    Set<AllowedIps.Prefix> out = new LinkedHashSet<>();
    for (String address : addresses == null ? List.<String>of() : addresses) {
      try {
        out.add(AllowedIps.Prefix.parse(stripLength(address)));
      } catch (IllegalArgumentException e) {
        LOG.warn("ignoring unusable address '" + address + "': " + e.getMessage());
      }
    }
    return out;
  }

  static String stripLength(String address) {
    int slash = address.indexOf('/');
    return (slash < 0 ? address : address.substring(0, slash)).strip();
  }

  /**
   * The first endpoint in an address family this host can use, else the first parseable one. Better
   * choices (reachability probing) come with NAT traversal.
   */
  InetSocketAddress chooseEndpoint(List<String> endpoints) {
    InetSocketAddress first = null;
    for (String text : endpoints == null ? List.<String>of() : endpoints) {
      InetSocketAddress candidate = Endpoints.parse(text);
      if (candidate == null) {
        continue;
      }
      if (usableFamily.test(candidate.getAddress())) {
        return candidate;
      }
      if (first == null) {
        first = candidate;
      }
    }
    return first;
  }
}
