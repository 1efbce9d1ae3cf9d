package dev.trellis.control.server;

import dev.trellis.control.admin.AdminRoutes;
import dev.trellis.control.console.ConsoleRoutes;
import dev.trellis.control.console.ConsoleSessions;
import dev.trellis.control.relay.RelayServer;
import java.time.Clock;
import java.util.Base64;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;

/** The server's HTTP surface. */
final class Routes extends AllDirectives {
  private final byte[] publicKey;
  private final ControlRoute control; // null on a member without the control role
  private final RelayServer relay;
  private final TrellisServer.Services services;
  private final ActorSystem<?> system;
  private final ConsoleSessions console;
  private final boolean tls;

  Routes(
      byte[] publicKey,
      ControlRoute control,
      RelayServer relay,
      TrellisServer.Services services,
      ActorSystem<?> system,
      ConsoleSessions console,
      boolean tls) {
    this.console = console;
    this.tls = tls;
    this.publicKey = publicKey;
    this.control = control;
    this.relay = relay;
    this.services = services;
    this.system = system;
  }

  Route routes() {
    return concat(
        path(
            "key",
            () ->
                get(
                    () ->
                        complete(
                            TrellisServer.json(
                                200,
                                "{\"publicKey\":\""
                                    + Base64.getEncoder().encodeToString(publicKey)
                                    + "\"}")))),
        path("health", () -> get(() -> complete(TrellisServer.json(200, "{\"status\":\"ok\"}")))),
        // For load balancers and systemd/k8s probes: alive = the process answers; ready = an Up
        // cluster member.
        path(
            PathMatchers.segment("health").slash("alive"),
            () -> get(() -> complete(TrellisServer.json(200, "{\"alive\":true}")))),
        path(
            PathMatchers.segment("health").slash("ready"),
            () ->
                get(
                    () -> {
                      var member = Cluster.get(system).selfMember();
                      boolean up = member.status() == MemberStatus.up();
                      return complete(
                          TrellisServer.json(
                              up ? 200 : 503,
                              "{\"ready\":" + up + ",\"member\":\"" + member.status() + "\"}"));
                    })),
        path(
            "control",
            () ->
                control != null
                    ? handleWebSocketMessages(control.newSession())
                    // A relay-only member: nodes learn the control members' URLs from their map.
                    : complete(
                        TrellisServer.json(
                            503,
                            "{\"error\":\"this member runs a relay only (trellis.cluster.roles "
                                + "has no control): log in at a control member\"}"))),
        relay != null ? relay.route() : reject(),
        new ConsoleRoutes(console, services.apiKeys(), system, Clock.systemUTC(), tls).route(),
        new AdminRoutes(services.admin(), services.apiKeys(), system, Clock.systemUTC(), console)
            .route());
  }
}
