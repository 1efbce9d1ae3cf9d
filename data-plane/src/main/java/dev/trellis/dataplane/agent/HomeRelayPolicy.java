package dev.trellis.dataplane.agent;

import dev.trellis.proto.control.ControlMessage.RelayInfo;
import dev.trellis.proto.wireguard.NoiseHash;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Which relay a node homes on, decided from a {@link RelayProbe.Report}: the region named by {@code
 * TRELLIS_HOME_RELAY} while it is reachable, else the fastest region; the home moves only to a
 * region clearly faster ({@link AgentTiming#RELAY_SWITCH_FACTOR}) or when its relay stops
 * answering. Within a region, the reachable relay holding the fewest nodes, ties broken by a hash
 * of node and relay so nodes enrolled together spread out. Pure: no state, no I/O.
 */
final class HomeRelayPolicy {
  private HomeRelayPolicy() {}

  /** Home in {@code region} on {@code relay}. */
  record Choice(String region, RelayInfo relay) {}

  /**
   * The new home after a probe, or null to keep the current one.
   *
   * @param home the current home region, null if none
   * @param homeRelay the relay used there, null if none
   * @param pin the region an admin pinned, null if none
   */
  static Choice decide(
      List<RelayInfo> relays,
      String home,
      RelayInfo homeRelay,
      RelayProbe.Report report,
      String pin,
      byte[] nodePublicKey) {
    Map<String, Double> measured = report.regionLatency();
    String best =
        pin != null && measured.containsKey(pin)
            ? pin
            : measured.entrySet().stream()
                .min(Map.Entry.comparingByValue())
                .map(Map.Entry::getKey)
                .orElse(null);
    if (best == null) {
      // Nothing answered: without a home, try the first region anyway (the connection backs off).
      return home == null && !relays.isEmpty()
          ? choose(relays.getFirst().region(), relays, report, nodePublicKey)
          : null;
    }
    if (homeRelay != null
        && best.equals(home)
        && !report.reachableUrls().contains(homeRelay.url())) {
      home = null; // the home region is fine but our relay there is not: take another of its relays
    }
    Double current = home == null ? null : measured.get(home);
    boolean homeInMap = home != null && inMap(home, relays);
    boolean move =
        home == null
            || !homeInMap
            || current == null
            || best.equals(pin)
            || measured.get(best) < current * AgentTiming.RELAY_SWITCH_FACTOR;
    return move && !best.equals(home) ? choose(best, relays, report, nodePublicKey) : null;
  }

  /**
   * The relay to use in {@code region}: of its reachable relays (all, if none answered), the least
   * loaded.
   */
  static Choice choose(
      String region, List<RelayInfo> relays, RelayProbe.Report report, byte[] nodePublicKey) {
    List<RelayInfo> inRegion = relays.stream().filter(r -> r.region().equals(region)).toList();
    Set<String> reachable = report.reachableUrls();
    if (inRegion.stream().anyMatch(r -> reachable.contains(r.url()))) {
      inRegion = inRegion.stream().filter(r -> reachable.contains(r.url())).toList();
    }
    RelayInfo pick =
        inRegion.size() == 1
            ? inRegion.getFirst()
            : leastLoaded(inRegion, report.loads(), nodePublicKey);
    return new Choice(region, pick);
  }

  /**
   * Of a region's relays, the one holding the fewest nodes (unknown load counts as full); equal
   * loads go by a hash of this node's key and the relay URL, so simultaneous arrivals spread.
   */
  static RelayInfo leastLoaded(
      List<RelayInfo> inRegion, Map<String, Integer> loads, byte[] nodePublicKey) {
    return inRegion.stream()
        .min(
            Comparator.<RelayInfo>comparingInt(r -> loads.getOrDefault(r.url(), Integer.MAX_VALUE))
                .thenComparingLong(r -> spread(nodePublicKey, r.url())))
        .orElse(null);
  }

  private static boolean inMap(String region, List<RelayInfo> relays) {
    return relays.stream().anyMatch(r -> r.region().equals(region));
  }

  private static long spread(byte[] nodePublicKey, String url) {
    byte[] digest = NoiseHash.hash(nodePublicKey, url.getBytes(StandardCharsets.UTF_8));
    return ByteBuffer.wrap(digest).getLong();
  }
}
