package dev.trellis.dataplane.multicast;

import dev.trellis.dataplane.wireguard.MulticastRouter;
import dev.trellis.proto.control.ControlMessage;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;

/**
 * This node's part in multicast over the overlay: which datagrams an application sends into the
 * Trellis interface go to which peers, and whether datagrams from peers are taken.
 *
 * <p>A UDP datagram to a multicast group goes, a copy each, to every peer in the map that takes
 * part in multicast (opted in with {@code trellis up --multicast}), but only when:
 *
 * <ul>
 *   <li>this node takes part too, and the network allows multicast (the map says so);
 *   <li>it comes from this node's own overlay address: a datagram that came in from the overlay and
 *       is sent out again (a host forwarding multicast) is dropped, so nothing loops;
 *   <li>its TTL or hop limit is at least 1, and an IPv6 group is not interface-local (ff01::/16) —
 *       the overlay counts as one link, so a datagram sent with the default TTL of 1 reaches the
 *       peers as on a LAN, and is written to their tunnels unchanged, never forwarded further;
 *   <li>this node is within its rate (datagrams and bytes per second, from the map).
 * </ul>
 *
 * Other multicast (IGMP, MLD, anything not UDP) stays on the host. Which peers receive is the
 * access policy's: a peer writes a datagram to its tunnel only if its packet filter lets this node
 * send UDP to it on the datagram's destination port, as for unicast. The peers the policy hides are
 * not in the map, so they get nothing at all.
 *
 * <p>Threads: {@link #update} on the agent's loop (publishes a new {@link Membership} through one
 * volatile write); {@link #targets} on the outbound packet thread only (it owns the rate limit);
 * {@link #accepts} on the inbound threads; the counters from any thread.
 */
public final class MulticastFanout implements MulticastRouter {
  private static final int IPV4_HEADER = 20;
  private static final int IPV6_HEADER = 40;
  private static final int UDP = 17;
  private static final byte[][] NONE = new byte[0][];

  /** What this node does with multicast now; replaced whole on every map. */
  record Membership(
      boolean member, byte[][] peers, byte[] ownIpv4, byte[] ownIpv6, RateLimit limit) {
    static final Membership OFF = new Membership(false, NONE, null, null, null);
  }

  /** What was done with multicast since the agent started. */
  public static final class Counters {
    public final LongAdder sent = new LongAdder();
    public final LongAdder copies = new LongAdder();
    public final LongAdder received = new LongAdder();
    public final LongAdder droppedRate = new LongAdder();
    public final LongAdder droppedLoop = new LongAdder();
    public final LongAdder droppedScope = new LongAdder();
    public final LongAdder refused = new LongAdder();
  }

  private final LongSupplier clock;
  private final Counters counters = new Counters();
  private volatile Membership membership = Membership.OFF;

  public MulticastFanout() {
    this(System::nanoTime);
  }

  MulticastFanout(LongSupplier clock) {
    this.clock = clock;
  }

  /**
   * A new map: {@code member} whether this node takes part, {@code network} the network's limits
   * (null: multicast is off for the network), {@code self} this node, {@code peers} the peers it
   * may see.
   */
  public void update(
      boolean member,
      ControlMessage.MulticastInfo network,
      ControlMessage.NodeInfo self,
      Collection<ControlMessage.NodeInfo> peers) {
    if (!member || network == null || self == null) {
      membership = Membership.OFF;
      return;
    }
    List<byte[]> keys = new ArrayList<>();
    for (ControlMessage.NodeInfo p : peers) {
      if (p.multicastMember() && p.nodeKey() != null) {
        try {
          byte[] key = Base64.getDecoder().decode(p.nodeKey());
          if (key.length == 32) keys.add(key);
        } catch (IllegalArgumentException e) {
          // not a key: the peer cannot be reached anyway
        }
      }
    }
    byte[] v4 = null;
    byte[] v6 = null;
    for (String a : self.addresses() == null ? List.<String>of() : self.addresses()) {
      try {
        byte[] raw = InetAddress.ofLiteral(a.replaceAll("/.*", "")).getAddress();
        if (raw.length == 4) v4 = raw;
        else v6 = raw;
      } catch (IllegalArgumentException e) {
        // not an address
      }
    }
    Membership old = membership;
    RateLimit limit =
        old.limit() != null
                && old.limit().packetsPerSecond() == network.packetsPerSecond()
                && old.limit().bytesPerSecond() == network.bytesPerSecond()
            ? old.limit()
            : new RateLimit(
                network.packetsPerSecond(), network.bytesPerSecond(), clock.getAsLong());
    membership = new Membership(true, keys.toArray(byte[][]::new), v4, v6, limit);
  }

  /** Whether this node takes part in multicast now. */
  public boolean member() {
    return membership.member();
  }

  /** How many peers get this node's multicast now. */
  public int peerCount() {
    return membership.peers().length;
  }

  public Counters counters() {
    return counters;
  }

  @Override
  public byte[][] targets(byte[] packet, int offset, int length) {
    Membership m = membership;
    if (!m.member() || m.peers().length == 0 || !udp(packet, offset, length)) {
      return NONE;
    }
    boolean v4 = (packet[offset] & 0xff) >>> 4 == 4;
    int ttl = packet[offset + (v4 ? 8 : 7)] & 0xff;
    if (ttl < 1 || (!v4 && (packet[offset + 25] & 0x0f) <= 1)) {
      counters.droppedScope.increment();
      return NONE;
    }
    byte[] own = v4 ? m.ownIpv4() : m.ownIpv6();
    if (own == null
        || !Arrays.equals(
            packet, offset + (v4 ? 12 : 8), offset + (v4 ? 16 : 24), own, 0, own.length)) {
      counters.droppedLoop.increment();
      return NONE;
    }
    if (!m.limit().take(length, clock.getAsLong())) {
      counters.droppedRate.increment();
      return NONE;
    }
    counters.sent.increment();
    counters.copies.add(m.peers().length);
    return m.peers();
  }

  @Override
  public boolean accepts(byte[] packet, int offset, int length) {
    if (membership.member() && udp(packet, offset, length)) {
      counters.received.increment();
      return true;
    }
    counters.refused.increment();
    return false;
  }

  /** A UDP datagram with no IPv6 extension headers (what multicast applications send). */
  private static boolean udp(byte[] packet, int offset, int length) {
    int version = (packet[offset] & 0xff) >>> 4;
    if (version == 4) {
      return length >= IPV4_HEADER + 8 && (packet[offset + 9] & 0xff) == UDP;
    }
    return version == 6 && length >= IPV6_HEADER + 8 && (packet[offset + 6] & 0xff) == UDP;
  }
}
