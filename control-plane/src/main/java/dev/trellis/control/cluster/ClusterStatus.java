package dev.trellis.control.cluster;

import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeEntity;
import dev.trellis.control.policy.PolicyRegistry;
import dev.trellis.control.user.UserRegistry;
import dev.trellis.persistence.CborSerializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.stream.StreamSupport;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.sharding.ShardRegion;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityTypeKey;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.pattern.Patterns;
import scala.concurrent.duration.FiniteDuration;

/**
 * What {@code trellis cluster status} shows: the members (address, roles, status, whether this
 * member can reach them) and where the sharded entities are — per kind, entities per member.
 */
public record ClusterStatus(
    String self, List<MemberInfo> members, Map<String, Map<String, Integer>> entities)
    implements CborSerializable {

  public record MemberInfo(String address, Set<String> roles, String status, boolean reachable)
      implements CborSerializable {}

  /** Every sharded kind of entity, by its name. */
  static final Map<String, EntityTypeKey<?>> KINDS =
      Map.of(
          "node", NodeEntity.TYPE_KEY,
          "users", EntityTypeKey.create(UserRegistry.Command.class, "users"),
          "authkeys", EntityTypeKey.create(AuthKeyRegistry.Command.class, "authkeys"),
          "apikeys", EntityTypeKey.create(ApiKeyRegistry.Command.class, "apikeys"),
          "addresses", EntityTypeKey.create(AddressAllocator.Command.class, "addresses"),
          "policy", EntityTypeKey.create(PolicyRegistry.Command.class, "policy"));

  /** A member's roles without Pekko's data-center role. */
  public static SortedSet<String> trellisRoles(Member m) {
    TreeSet<String> roles = new TreeSet<>(m.getRoles());
    roles.removeIf(r -> r.startsWith("dc-"));
    return roles;
  }

  public static CompletionStage<ClusterStatus> collect(ActorSystem<?> system, Duration timeout) {
    Cluster cluster = Cluster.get(system);
    var state = cluster.state();
    Set<Member> unreachable = state.getUnreachable();
    List<MemberInfo> members = new ArrayList<>();
    for (Member m : state.getMembers()) {
      members.add(
          new MemberInfo(
              m.address().toString(),
              trellisRoles(m),
              m.status().toString(),
              !unreachable.contains(m)));
    }
    Map<String, Map<String, Integer>> entities = new TreeMap<>();
    List<CompletableFuture<Void>> asks = new ArrayList<>();
    // Asked of the shard region on the oldest control member: a member without the control role
    // only has a
    // proxy, which answers with no regions; every control region forwards to the coordinator.
    Member controlMember =
        StreamSupport.stream(state.getMembers().spliterator(), false)
            .filter(m -> m.hasRole(ClusterSettings.ROLE_CONTROL) && m.status() == MemberStatus.up())
            .min(Member.ageOrdering())
            .orElse(null);
    KINDS.forEach(
        (name, key) -> {
          if (controlMember == null) {
            return; // no control member up: nothing is placed anywhere
          }
          CompletionStage<Object> stats =
              Patterns.ask(
                  system
                      .classicSystem()
                      .actorSelection(controlMember.address() + "/system/sharding/" + key.name()),
                  new ShardRegion.GetClusterShardingStats(
                      FiniteDuration.fromNanos(timeout.toNanos())),
                  timeout.plusSeconds(1));
          asks.add(
              stats
                  .toCompletableFuture()
                  .thenAccept(
                      reply -> {
                        Map<String, Integer> perMember = new TreeMap<>();
                        ((ShardRegion.ClusterShardingStats) reply)
                            .getRegions()
                            .forEach(
                                (address, region) -> {
                                  int total = 0;
                                  for (Object count : region.getStats().values()) {
                                    total += ((Number) count).intValue();
                                  }
                                  perMember.put(address.toString(), total);
                                });
                        synchronized (entities) {
                          entities.put(name, perMember);
                        }
                      })
                  .exceptionally(e -> null));
        });
    return CompletableFuture.allOf(asks.toArray(CompletableFuture[]::new))
        .thenApply(
            v ->
                new ClusterStatus(
                    cluster.selfMember().address().toString(),
                    List.copyOf(members),
                    Map.copyOf(entities)));
  }
}
