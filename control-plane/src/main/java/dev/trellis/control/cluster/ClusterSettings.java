package dev.trellis.control.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * The {@code trellis.cluster} section: how this server joins the Pekko cluster of a campus. Without
 * seed nodes a server forms a one-member cluster of its own (holding every role), which is what
 * {@code trellis server} on embedded defaults is. With seed nodes it joins them; then its remoting
 * port must be fixed and reachable from the other members.
 */
public record ClusterSettings(
    String host,
    int port,
    List<String> seedNodes,
    Set<String> roles,
    String splitBrainStrategy,
    Duration stableAfter) {
  public static final String SYSTEM_NAME = "trellis";
  public static final String ROLE_CONTROL = "control";
  public static final String ROLE_RELAY = "relay";
  private static final Set<String> STRATEGIES =
      Set.of("keep-majority", "keep-oldest", "down-all", "static-quorum", "keep-referee");

  public static ClusterSettings from(Config config) {
    Config c = config.getConfig("trellis.cluster");
    String host = c.getString("host").strip();
    int port = c.getInt("port");
    if (port < 0 || port > 65535) {
      throw new IllegalArgumentException("trellis.cluster.port must be 0..65535, not " + port);
    }
    List<String> seeds = new ArrayList<>();
    for (String s : c.getStringList("seed-nodes")) {
      seeds.add(seedAddress(s.strip()));
    }
    if (!seeds.isEmpty() && port == 0) {
      throw new IllegalArgumentException(
          "trellis.cluster.port must be fixed (e.g. 25520) when trellis.cluster.seed-nodes are set: "
              + "the other members reach this one there");
    }
    Set<String> roles = new TreeSet<>(c.getStringList("roles"));
    if (roles.isEmpty() || !Set.of(ROLE_CONTROL, ROLE_RELAY).containsAll(roles)) {
      throw new IllegalArgumentException(
          "trellis.cluster.roles must be one or both of control, relay; got " + roles);
    }
    if (!config.getBoolean("trellis.relay.enabled")) {
      roles.remove(ROLE_RELAY);
      if (roles.isEmpty()) {
        throw new IllegalArgumentException(
            "this member would hold no role: trellis.relay.enabled = false and "
                + "trellis.cluster.roles = [relay]");
      }
    }
    if (seeds.isEmpty() && !roles.contains(ROLE_CONTROL)) {
      // Nobody else would hold the nodes, users and keys its relay admits.
      throw new IllegalArgumentException(
          "trellis.cluster.roles = "
              + roles
              + " needs trellis.cluster.seed-nodes: a server "
              + "without seed nodes is a cluster of its own and must hold the control role");
    }
    String strategy = c.getString("split-brain-resolver.active-strategy");
    if (!STRATEGIES.contains(strategy)) {
      throw new IllegalArgumentException(
          "trellis.cluster.split-brain-resolver.active-strategy must be one of "
              + STRATEGIES
              + ", not "
              + strategy);
    }
    return new ClusterSettings(
        host.isEmpty() ? "127.0.0.1" : host,
        port,
        List.copyOf(seeds),
        Set.copyOf(roles),
        strategy,
        c.getDuration("split-brain-resolver.stable-after"));
  }

  /** "HOST:PORT" (or a full pekko:// address) as a Pekko seed-node address. */
  static String seedAddress(String seed) {
    if (seed.startsWith("pekko://")) {
      return seed;
    }
    int colon = seed.lastIndexOf(':');
    if (colon <= 0 || colon == seed.length() - 1) {
      throw new IllegalArgumentException(
          "trellis.cluster.seed-nodes entries must be HOST:PORT, not '" + seed + "'");
    }
    try {
      int port = Integer.parseInt(seed.substring(colon + 1));
      if (port < 1 || port > 65535) {
        throw new NumberFormatException();
      }
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(
          "trellis.cluster.seed-nodes entry '" + seed + "' has no valid port");
    }
    return "pekko://" + SYSTEM_NAME + "@" + seed;
  }

  /**
   * Whether this member holds {@code role} ({@link #ROLE_CONTROL} or {@link #ROLE_RELAY}); {@code
   * trellis.relay.enabled = false} takes relay away.
   */
  public boolean holds(String role) {
    return roles.contains(role);
  }

  /** True when this server forms its own one-member cluster. */
  public boolean standalone() {
    return seedNodes.isEmpty();
  }

  /** The Pekko settings this amounts to; put it in front of the rest of the config. */
  public Config pekkoConfig() {
    return ConfigFactory.empty()
        .withValue("pekko.actor.provider", ConfigValueFactory.fromAnyRef("cluster"))
        .withValue("pekko.remote.artery.canonical.hostname", ConfigValueFactory.fromAnyRef(host))
        .withValue("pekko.remote.artery.canonical.port", ConfigValueFactory.fromAnyRef(port))
        .withValue("pekko.cluster.seed-nodes", ConfigValueFactory.fromIterable(seedNodes))
        .withValue("pekko.cluster.roles", ConfigValueFactory.fromIterable(List.copyOf(roles)))
        .withValue(
            "pekko.cluster.downing-provider-class",
            ConfigValueFactory.fromAnyRef(
                "org.apache.pekko.cluster.sbr.SplitBrainResolverProvider"))
        .withValue(
            "pekko.cluster.split-brain-resolver.active-strategy",
            ConfigValueFactory.fromAnyRef(splitBrainStrategy))
        .withValue(
            "pekko.cluster.split-brain-resolver.stable-after",
            ConfigValueFactory.fromAnyRef(stableAfter.toMillis() + "ms"))
        // Several members in one JVM (tests) must not fight over the same JMX names.
        .withValue(
            "pekko.cluster.jmx.multi-mbeans-in-same-jvm", ConfigValueFactory.fromAnyRef("on"));
  }
}
