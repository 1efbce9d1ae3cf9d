package dev.trellis.control.node;

import static dev.trellis.control.CopyOnWrite.with;
import static dev.trellis.control.CopyOnWrite.without;

import dev.trellis.control.Keys;
import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.persistence.CborSerializable;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;

/**
 * Node ids, overlay addresses and unique hostnames, keyed by machine key.
 *
 * <p>A node's IPv6 address is the IPv6 prefix plus the same offset its IPv4 address has in the IPv4
 * prefix: with the defaults 100.64.0.5 pairs with fd7a:115c:a1e0::5. IPv4 addresses are handed out
 * in order after the last one given, wrapping around, skipping the prefix's own address, its
 * broadcast address and every x.y.z.0; a released address is reused only once the allocation has
 * wrapped round to it. Node ids are never reused.
 *
 * <p>Allocations record the addresses they were given, so changing the prefixes later leaves
 * existing nodes where they are.
 */
public final class AddressAllocator
    extends EventSourcedBehavior<
        AddressAllocator.Command, AddressAllocator.Event, AddressAllocator.State> {

  public static final PersistenceId PERSISTENCE_ID = PersistenceId.ofUniqueId("addresses");
  public static final String DEFAULT_IPV4_PREFIX = "100.64.0.0/10";
  public static final String DEFAULT_IPV6_PREFIX = "fd7a:115c:a1e0::/48";

  /**
   * A node's identity in the overlay. {@code existing} is true when the machine key already had
   * this allocation (a re-login) and false when {@code Allocate} just created it.
   */
  public record Allocation(long nodeId, String ipv4, String ipv6, String hostname, boolean existing)
      implements CborSerializable {
    public Allocation asExisting() {
      return existing ? this : new Allocation(nodeId, ipv4, ipv6, hostname, true);
    }
  }

  /** Crosses cluster members (the registry is a sharded entity), so serializable. */
  public sealed interface Command extends CborSerializable {}

  /** The same machine key always gets its node id and addresses back. */
  public record Allocate(
      String machineKey, String requestedHostname, ActorRef<Result<Allocation>> replyTo)
      implements Command {}

  /** Gives a node a hostname chosen by an admin: no suffixing, refused if another node has it. */
  public record Rename(long nodeId, String hostname, ActorRef<Result<Allocation>> replyTo)
      implements Command {}

  /** Forgets a deleted node: its addresses and hostname become free, its machine key unknown. */
  public record Release(long nodeId, ActorRef<Result<Allocation>> replyTo) implements Command {}

  public record FindByMachineKey(String machineKey, ActorRef<Optional<Allocation>> replyTo)
      implements Command {}

  public record ListAllocations(ActorRef<List<Allocation>> replyTo) implements Command {}

  public sealed interface Event extends CborSerializable {}

  public record Allocated(long nodeId, String machineKey, String ipv4, String ipv6, String hostname)
      implements Event {}

  public record HostnameChanged(long nodeId, String hostname) implements Event {}

  public record Released(long nodeId) implements Event {}

  public record StoredAllocation(
      long nodeId, String machineKey, String ipv4, String ipv6, String hostname)
      implements CborSerializable {
    Allocation view(boolean existing) {
      return new Allocation(nodeId, ipv4, ipv6, hostname, existing);
    }
  }

  /**
   * Allocations by node id, with indexes by machine key, IPv4 and hostname (redundant, kept so
   * every lookup is direct). {@code lastIpv4} is where the next search for a free address starts.
   */
  public record State(
      long nextNodeId,
      String lastIpv4,
      Map<Long, StoredAllocation> nodes,
      Map<String, Long> byMachineKey,
      Map<String, Long> byIpv4,
      Map<String, Long> byHostname)
      implements CborSerializable {}

  public static Behavior<Command> create() {
    return create(DEFAULT_IPV4_PREFIX, DEFAULT_IPV6_PREFIX);
  }

  /**
   * @throws IllegalArgumentException if a prefix is malformed or the IPv6 one is smaller than the
   *     IPv4 one
   */
  public static Behavior<Command> create(String ipv4Prefix, String ipv6Prefix) {
    IpPrefix v4 = IpPrefix.parse(ipv4Prefix == null ? DEFAULT_IPV4_PREFIX : ipv4Prefix, false);
    IpPrefix v6 = IpPrefix.parse(ipv6Prefix == null ? DEFAULT_IPV6_PREFIX : ipv6Prefix, true);
    if (v6.hostBits() < v4.hostBits()) {
      throw new IllegalArgumentException(
          "IPv6 prefix " + v6.text() + " has fewer addresses than IPv4 prefix " + v4.text());
    }
    return new AddressAllocator(v4, v6);
  }

  private final IpPrefix ipv4Prefix;
  private final IpPrefix ipv6Prefix;

  private AddressAllocator(IpPrefix ipv4Prefix, IpPrefix ipv6Prefix) {
    super(PERSISTENCE_ID);
    this.ipv4Prefix = ipv4Prefix;
    this.ipv6Prefix = ipv6Prefix;
  }

  @Override
  public State emptyState() {
    return new State(1, null, Map.of(), Map.of(), Map.of(), Map.of());
  }

  @Override
  public RetentionCriteria retentionCriteria() {
    return RetentionCriteria.snapshotEvery(100, 2);
  }

  @Override
  public CommandHandler<Command, Event, State> commandHandler() {
    return (state, command) ->
        switch (command) {
          case Allocate a -> allocate(state, a);
          case Rename r -> rename(state, r);
          case Release r -> release(state, r);
          case FindByMachineKey f ->
              Effect()
                  .reply(
                      f.replyTo(),
                      Optional.ofNullable(state.byMachineKey().get(f.machineKey()))
                          .map(id -> state.nodes().get(id).view(true)));
          case ListAllocations l ->
              Effect()
                  .reply(
                      l.replyTo(),
                      state.nodes().values().stream()
                          .sorted(Comparator.comparingLong(StoredAllocation::nodeId))
                          .map(n -> n.view(true))
                          .toList());
        };
  }

  private Effect<Event, State> allocate(State state, Allocate command) {
    if (!Keys.isPublicKey(command.machineKey())) {
      return Effect()
          .reply(command.replyTo(), Result.rejected(Code.INVALID, "malformed machine key"));
    }
    Long existingId = state.byMachineKey().get(command.machineKey());
    if (existingId != null) return reallocate(state, state.nodes().get(existingId), command);

    String ipv4 = nextFreeIpv4(state);
    if (ipv4 == null) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(
                  Code.CONFLICT, "address pool " + ipv4Prefix.text() + " is exhausted"));
    }
    String ipv6 = ipv6Prefix.addressAt(ipv4Prefix.offsetOf(ipv4));
    String hostname =
        Hostnames.unique(
            Hostnames.sanitize(command.requestedHostname()), state.byHostname()::containsKey);
    long nodeId = state.nextNodeId();
    return Effect()
        .persist(new Allocated(nodeId, command.machineKey(), ipv4, ipv6, hostname))
        .thenReply(command.replyTo(), s -> Result.ok(s.nodes().get(nodeId).view(false)));
  }

  /**
   * A known machine keeps its hostname unless it asks for a name that is not already (a variant of)
   * it.
   */
  private Effect<Event, State> reallocate(State state, StoredAllocation node, Allocate command) {
    String requested = command.requestedHostname();
    if (requested == null || requested.isBlank())
      return Effect().reply(command.replyTo(), Result.ok(node.view(true)));
    String base = Hostnames.sanitize(requested);
    if (Hostnames.isVariantOf(node.hostname(), base))
      return Effect().reply(command.replyTo(), Result.ok(node.view(true)));
    String hostname = Hostnames.unique(base, name -> takenByOther(state, name, node.nodeId()));
    return Effect()
        .persist(new HostnameChanged(node.nodeId(), hostname))
        .thenReply(command.replyTo(), s -> Result.ok(s.nodes().get(node.nodeId()).view(true)));
  }

  private Effect<Event, State> rename(State state, Rename command) {
    StoredAllocation node = state.nodes().get(command.nodeId());
    if (node == null) {
      return Effect()
          .reply(command.replyTo(), Result.rejected(Code.NOT_FOUND, "no node " + command.nodeId()));
    }
    String hostname =
        command.hostname() == null ? null : command.hostname().toLowerCase(Locale.ROOT);
    if (!Hostnames.isValid(hostname)) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(
                  Code.INVALID,
                  "invalid hostname '"
                      + command.hostname()
                      + "': 1-63 characters of a-z 0-9 -, not starting or ending with -"));
    }
    if (hostname.equals(node.hostname()))
      return Effect().reply(command.replyTo(), Result.ok(node.view(true)));
    if (takenByOther(state, hostname, node.nodeId())) {
      return Effect()
          .reply(
              command.replyTo(),
              Result.rejected(
                  Code.ALREADY_EXISTS,
                  "hostname "
                      + hostname
                      + " is already used by node "
                      + state.byHostname().get(hostname)));
    }
    return Effect()
        .persist(new HostnameChanged(node.nodeId(), hostname))
        .thenReply(command.replyTo(), s -> Result.ok(s.nodes().get(node.nodeId()).view(true)));
  }

  private Effect<Event, State> release(State state, Release command) {
    StoredAllocation node = state.nodes().get(command.nodeId());
    if (node == null) {
      return Effect()
          .reply(command.replyTo(), Result.rejected(Code.NOT_FOUND, "no node " + command.nodeId()));
    }
    return Effect()
        .persist(new Released(node.nodeId()))
        .thenReply(command.replyTo(), s -> Result.ok(node.view(true)));
  }

  private static boolean takenByOther(State state, String hostname, long nodeId) {
    Long holder = state.byHostname().get(hostname);
    return holder != null && holder != nodeId;
  }

  /** First usable address after the last one handed out, wrapping around; null if none is free. */
  private String nextFreeIpv4(State state) {
    long size = ipv4Prefix.size();
    long lastUsable = size - 2; // size - 1 is the broadcast address
    if (lastUsable < 1) return null;
    long last = state.lastIpv4() == null ? 0 : ipv4Prefix.offsetOf(state.lastIpv4());
    long start = last < 1 || last >= lastUsable ? 1 : last + 1;
    for (long i = 0, offset = start;
        i < lastUsable;
        i++, offset = offset == lastUsable ? 1 : offset + 1) {
      String candidate = ipv4Prefix.addressAt(offset);
      if (candidate.endsWith(".0") || state.byIpv4().containsKey(candidate)) continue;
      return candidate;
    }
    return null;
  }

  @Override
  public EventHandler<State, Event> eventHandler() {
    return (state, event) ->
        switch (event) {
          case Allocated e -> {
            var node =
                new StoredAllocation(e.nodeId(), e.machineKey(), e.ipv4(), e.ipv6(), e.hostname());
            yield new State(
                Math.max(state.nextNodeId(), e.nodeId() + 1),
                e.ipv4(),
                with(state.nodes(), e.nodeId(), node),
                with(state.byMachineKey(), e.machineKey(), e.nodeId()),
                with(state.byIpv4(), e.ipv4(), e.nodeId()),
                with(state.byHostname(), e.hostname(), e.nodeId()));
          }
          case HostnameChanged e -> {
            StoredAllocation node = state.nodes().get(e.nodeId());
            if (node == null) yield state;
            var renamed =
                new StoredAllocation(
                    node.nodeId(), node.machineKey(), node.ipv4(), node.ipv6(), e.hostname());
            yield new State(
                state.nextNodeId(),
                state.lastIpv4(),
                with(state.nodes(), node.nodeId(), renamed),
                state.byMachineKey(),
                state.byIpv4(),
                with(without(state.byHostname(), node.hostname()), e.hostname(), node.nodeId()));
          }
          case Released e -> {
            StoredAllocation node = state.nodes().get(e.nodeId());
            if (node == null) yield state;
            yield new State(
                state.nextNodeId(),
                state.lastIpv4(),
                without(state.nodes(), node.nodeId()),
                without(state.byMachineKey(), node.machineKey()),
                without(state.byIpv4(), node.ipv4()),
                without(state.byHostname(), node.hostname()));
          }
        };
  }
}
