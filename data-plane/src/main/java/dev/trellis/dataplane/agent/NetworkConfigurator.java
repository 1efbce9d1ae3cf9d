package dev.trellis.dataplane.agent;

import java.io.IOException;
import java.net.InetAddress;
import java.util.List;

/**
 * The host side of the interface: its overlay addresses, link state and routes. The agent states
 * what it wants; implementations work out what to add and remove.
 */
public interface NetworkConfigurator {
  /**
   * Brings the interface up with exactly these addresses (host routes) and these routed prefixes.
   */
  void apply(List<InetAddress> addresses, List<String> routes) throws IOException;

  /** Removes the addresses and routes this configurator added. */
  void clear();

  /** For unit tests and for running without root: configures nothing. */
  NetworkConfigurator NONE =
      new NetworkConfigurator() {
        @Override
        public void apply(List<InetAddress> addresses, List<String> routes) {}

        @Override
        public void clear() {}
      };
}
