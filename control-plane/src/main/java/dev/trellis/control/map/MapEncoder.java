package dev.trellis.control.map;

import com.fasterxml.jackson.core.JsonProcessingException;
import dev.trellis.control.map.NetworkMap.Presence;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.control.ControlMessage;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongPredicate;

/**
 * Builds the JSON of the map messages a session sends: {@link ControlMessage.FullMap}, {@link
 * ControlMessage.MapDelta} and {@link ControlMessage.NetworkUpdate}. Each node's {@link
 * ControlMessage.NodeInfo} is encoded by Jackson once and cached until {@link #invalidate
 * invalidated}, so a full map or delta is a concatenation of cached pieces, not one encoding per
 * node per session. The envelopes are written by hand for that reason (Jackson would encode every
 * node again); MapEncoderTest reads them back into the protocol records.
 *
 * <p>Not thread-safe: touched only on the NetworkMap actor's thread.
 */
final class MapEncoder {
  private final NodeIndex nodes;
  private final PresenceTable presence;

  /** Encoded NodeInfo JSON of each node; dropped when the node or its presence changes. */
  private final Map<Long, byte[]> encoded = new HashMap<>();

  MapEncoder(NodeIndex nodes, PresenceTable presence) {
    this.nodes = nodes;
    this.presence = presence;
  }

  /** The node changed: its JSON is encoded again when next needed. */
  void invalidate(long nodeId) {
    encoded.remove(nodeId);
  }

  /** A node as the map shows it: its record and its presence (null: never seen). */
  static ControlMessage.NodeInfo info(NodeRecord record, Presence p) {
    List<String> addresses = new ArrayList<>();
    if (record.ipv4() != null) addresses.add(record.ipv4());
    if (record.ipv6() != null) addresses.add(record.ipv6());
    return new ControlMessage.NodeInfo(
        record.id(),
        record.hostname(),
        record.user(),
        record.nodeKey(),
        addresses,
        p == null ? List.of() : p.endpoints(),
        p != null && p.online(),
        p == null ? null : p.lastSeen(),
        record.tags(),
        record.expiry(),
        record.ephemeral(),
        p == null ? null : p.homeRelay(),
        p == null ? null : p.multicast());
  }

  private byte[] nodeJson(long id) {
    return encoded.computeIfAbsent(id, k -> json(info(nodes.get(k), presence.get(k))));
  }

  /**
   * The full map of node {@code self}: itself, the network, and every other live node as a peer.
   */
  byte[] fullMap(long self, ControlMessage.NetworkInfo network) {
    return fullMap(self, network, id -> true);
  }

  /** The same with only the live nodes {@code visible} says {@code self} may see. */
  byte[] fullMap(long self, ControlMessage.NetworkInfo network, LongPredicate visible) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(ascii("{\"type\":\"full-map\",\"self\":"));
    out.writeBytes(nodeJson(self));
    out.writeBytes(ascii(",\"network\":"));
    out.writeBytes(json(network));
    out.writeBytes(ascii(",\"peers\":["));
    boolean first = true;
    for (NodeRecord record : nodes.all()) {
      if (record.id() == self || !nodes.live(record) || !visible.test(record.id())) {
        continue;
      }
      if (!first) out.write(',');
      first = false;
      out.writeBytes(nodeJson(record.id()));
    }
    out.writeBytes(ascii("]}"));
    return out.toByteArray();
  }

  /**
   * A delta: the changed nodes and the removed ids. With {@code self} &ge; 0 (one of the changed
   * nodes) it is that node's own delta, which carries it as "self" rather than among the upserted.
   */
  byte[] delta(List<Long> changedIds, List<Long> removedIds, long self) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(ascii("{\"type\":\"map-delta\",\"self\":"));
    out.writeBytes(self >= 0 ? nodeJson(self) : ascii("null"));
    out.writeBytes(ascii(",\"upserted\":["));
    boolean first = true;
    for (long id : changedIds) {
      if (id == self) continue;
      if (!first) out.write(',');
      first = false;
      out.writeBytes(nodeJson(id));
    }
    out.writeBytes(ascii("],\"removed\":"));
    out.writeBytes(json(removedIds));
    out.write('}');
    return out.toByteArray();
  }

  /** A node's packet filter (null rules: no policy, everything allowed). */
  static byte[] packetFilter(List<ControlMessage.FilterRule> rules) {
    return ControlJson.encode(new ControlMessage.PacketFilter(rules));
  }

  /** New network settings, for every session. */
  static byte[] networkUpdate(ControlMessage.NetworkInfo network) {
    return ControlJson.encode(new ControlMessage.NetworkUpdate(network));
  }

  private static byte[] json(Object value) {
    try {
      return ControlJson.MAPPER.writeValueAsBytes(value);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private static byte[] ascii(String s) {
    return s.getBytes(StandardCharsets.US_ASCII);
  }
}
