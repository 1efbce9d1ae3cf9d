package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.dns.NodeDns;
import dev.trellis.dataplane.metrics.MetricsEndpoint;
import dev.trellis.dataplane.offload.Offloads;
import dev.trellis.dataplane.socket.UnixLineServer;
import dev.trellis.dataplane.tun.TunDevice;
import dev.trellis.dataplane.uapi.UapiServer;
import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.dataplane.wireguard.Timing;
import java.io.IOException;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * `trellis agent` in the foreground: state directory, TUN interface, WireGuard device (private key
 * = node key), the `wg` socket, the agent and its local API. Returns when the device closes
 * (SIGTERM, or the interface was deleted).
 */
public final class AgentDaemon {
  public static final String DEFAULT_INTERFACE = "trellis0";
  public static final int DEFAULT_PORT = 41641;
  private static final Logger LOG = LoggerFactory.getLogger(AgentDaemon.class);

  /**
   * {@code listenPort} 0 picks a random free port; {@code metricsListen} where to serve /metrics
   * (null: not served).
   */
  public record Options(
      Path stateDirectory, String interfaceName, int listenPort, String metricsListen) {}

  /** A setup step failed; the message is meant for a person. */
  public static final class StartFailure extends Exception {
    public StartFailure(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private AgentDaemon() {}

  public static void run(Options options) throws StartFailure, InterruptedException {
    AgentState state;
    try {
      state = AgentState.open(options.stateDirectory());
    } catch (IOException e) {
      throw new StartFailure(
          "cannot open state directory " + options.stateDirectory() + ": " + e.getMessage(), e);
    }
    try {
      if (!AgentState.lock(state.directory())) {
        throw new StartFailure(
            "another agent is already running with state directory "
                + state.directory()
                + "; a second agent on this host needs its own --state-dir DIR and --interface NAME",
            null);
      }
    } catch (IOException e) {
      throw new StartFailure(
          "cannot lock state directory " + state.directory() + ": " + e.getMessage(), e);
    }
    String secondAgent =
        "; a second agent on this host needs its own --interface NAME (and --state-dir DIR)";
    if (Files.exists(Path.of("/sys/class/net", options.interfaceName()))) {
      throw new StartFailure(
          "interface "
              + options.interfaceName()
              + " already exists (another agent or WireGuard daemon has it)"
              + secondAgent,
          null);
    }
    Offloads offloads;
    try {
      offloads = Offloads.fromEnvironment();
    } catch (IllegalArgumentException e) {
      throw new StartFailure(e.getMessage(), e);
    }
    TunDevice tun;
    try {
      tun = TunDevice.open(options.interfaceName(), TunDevice.DEFAULT_MTU, offloads.tun());
    } catch (IOException e) {
      boolean busy = String.valueOf(e.getMessage()).toLowerCase().contains("busy");
      throw new StartFailure(
          "cannot create TUN device "
              + options.interfaceName()
              + ": "
              + e.getMessage()
              + (busy ? secondAgent : ""),
          e);
    }
    Device device = new Device(tun, Timing.fromEnvironment(), offloads);
    UapiServer uapi;
    try {
      device.setPrivateKey(state.nodePrivateKey());
      device.setListenPort(options.listenPort());
      device.start();
    } catch (IOException e) {
      device.close();
      throw new StartFailure(
          "cannot listen on UDP port " + options.listenPort() + ": " + e.getMessage(), e);
    }
    try {
      uapi = UapiServer.start(device, tun.name());
    } catch (UnixLineServer.InUse e) {
      device.close();
      throw new StartFailure(
          "interface "
              + tun.name()
              + " is already served by another agent or WireGuard daemon ("
              + UapiServer.socketPath(tun.name())
              + ")"
              + secondAgent,
          e);
    } catch (IOException e) {
      device.close();
      throw new StartFailure(
          "cannot serve the wg socket for " + tun.name() + ": " + e.getMessage(), e);
    }
    HttpClient http = ControlClient.newHttpClient();
    String name = tun.name();
    PeerPaths paths =
        new PeerPaths(
            device, state.nodePrivateKey(), () -> HostEndpoints.scan(name, device.listenPort()));
    Agent agent =
        new Agent(
            state,
            device,
            name,
            new IpCommandNetwork(name),
            (server, key, listener) -> ControlClient.connect(http, server, key, listener),
            () -> HostEndpoints.scan(name, device.listenPort()),
            paths,
            http,
            new NodeDns(Path.of("/etc/resolv.conf"), state.directory(), name));
    LocalApi api;
    try {
      api = LocalApi.start(state.socketPath(), agent);
    } catch (IOException | IllegalStateException e) {
      uapi.close();
      device.close();
      throw new StartFailure("cannot serve " + state.socketPath() + ": " + e.getMessage(), e);
    }
    MetricsEndpoint metrics = null;
    if (options.metricsListen() != null) {
      try {
        metrics =
            MetricsEndpoint.start(
                agent.nodeMetrics().registry(), options.metricsListen(), "--metrics-listen");
      } catch (IOException e) {
        api.close();
        agent.close();
        uapi.close();
        device.close();
        throw new StartFailure(e.getMessage(), e);
      }
    }
    MetricsEndpoint metricsEndpoint = metrics;
    agent.start();
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  if (metricsEndpoint != null) {
                    metricsEndpoint.close();
                  }
                  api.close();
                  agent.close();
                  uapi.close();
                  device.close();
                },
                "trellis-agent-shutdown"));
    LOG.info(
        "agent up: interface "
            + name
            + ", UDP port "
            + device.listenPort()
            + ", local API "
            + api.path()
            + (metricsEndpoint == null
                ? ""
                : ", metrics on " + options.metricsListen() + " (/metrics)"));
    device.awaitClosed();
    if (metricsEndpoint != null) {
      metricsEndpoint.close();
    }
    api.close();
    agent.close();
    uapi.close();
  }
}
