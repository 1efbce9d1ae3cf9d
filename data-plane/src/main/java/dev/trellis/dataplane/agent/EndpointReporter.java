package dev.trellis.dataplane.agent;

import dev.trellis.proto.control.ControlMessage;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Executor;
import java.util.function.Supplier;

/**
 * Tells the server where this node can be reached: the host's own addresses, the WireGuard socket's
 * STUN-reflexive address (asked from that socket through {@link PeerPaths}, so it is the NAT
 * mapping peers must aim at), the home relay region and whether the node takes part in multicast.
 * Sends an update only when something changed.
 *
 * <p>Threads: owned by the agent's loop thread; the STUN answer arrives on another thread and is
 * handed to the loop through {@code loop} before it touches any field.
 */
final class EndpointReporter {
  private final Executor loop;
  private final Supplier<List<String>> hostEndpoints;

  /** Null when the agent runs without path discovery (tests). */
  private final PeerPaths paths;

  private final Supplier<String> homeRegion;
  private final Supplier<Boolean> multicast;
  private final Supplier<String> loginServer;

  // ---- loop-thread state ----
  /** The WireGuard socket's reflexive address ("ip:port"), null until (or unless) STUN answers. */
  private String reflexive;

  private List<String> reported = List.of();
  private String reportedHome;
  private Boolean reportedMulticast;

  EndpointReporter(
      Executor loop,
      Supplier<List<String>> hostEndpoints,
      PeerPaths paths,
      Supplier<String> homeRegion,
      Supplier<Boolean> multicast,
      Supplier<String> loginServer) {
    this.loop = loop;
    this.hostEndpoints = hostEndpoints;
    this.paths = paths;
    this.homeRegion = homeRegion;
    this.multicast = multicast;
    this.loginServer = loginServer;
  }

  /**
   * The endpoints to put in a Login; they count as reported, the home relay and multicast not yet.
   */
  List<String> forLogin() {
    reported = current();
    reportedHome = null; // told once the login succeeded (check)
    reportedMulticast = null;
    return reported;
  }

  /** Sends an UpdateEndpoints on {@code session} if the endpoints or the home relay changed. */
  void check(ControlConnection.Session session) {
    if (session == null) {
      return;
    }
    List<String> now = current();
    String home = homeRegion.get();
    Boolean member = multicast.get();
    if (!now.equals(reported)
        || !Objects.equals(home, reportedHome)
        || !Objects.equals(member, reportedMulticast)) {
      reported = now;
      reportedHome = home;
      reportedMulticast = member;
      session.client.send(new ControlMessage.UpdateEndpoints(now, home, member));
    }
  }

  /**
   * Asks the server's STUN where the WireGuard socket appears; a change is reported at once through
   * {@code onChange}.
   */
  void refreshReflexive(Runnable onChange) {
    String server = loginServer.get();
    if (paths == null || server == null) {
      return;
    }
    URI uri = URI.create(server);
    if (uri.getHost() == null) {
      return;
    }
    paths
        .reflexiveAddress(
            new InetSocketAddress(uri.getHost(), AgentTiming.STUN_PORT), AgentTiming.STUN_TIMEOUT)
        .whenComplete(
            (address, e) ->
                loop.execute(
                    ControlConnection.guarded(
                        () -> {
                          String now =
                              e != null || address == null ? null : Endpoints.format(address);
                          if (!Objects.equals(now, reflexive)) {
                            reflexive = now;
                            onChange.run();
                          }
                        })));
  }

  /** The host's own addresses and, once STUN has answered, the reflexive one. */
  private List<String> current() {
    List<String> endpoints = new ArrayList<>(hostEndpoints.get());
    if (reflexive != null && !endpoints.contains(reflexive)) {
      endpoints.add(reflexive);
    }
    return List.copyOf(endpoints);
  }
}
