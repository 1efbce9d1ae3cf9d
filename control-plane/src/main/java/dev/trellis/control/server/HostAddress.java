package dev.trellis.control.server;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The address other hosts most likely reach this one at, for a server that listens on every address
 * and has no {@code trellis.server-url}: an address of the interface that carries the default route
 * (Linux {@code /proc/net/route}), else of any interface that is up; IPv4 before IPv6; never
 * loopback or link-local. Called once at start.
 */
final class HostAddress {
  private HostAddress() {}

  static Optional<String> reachable() {
    List<NetworkInterface> candidates = new ArrayList<>();
    try {
      String defaultRoute = defaultRouteInterface();
      for (NetworkInterface nic : NetworkInterface.networkInterfaces().toList()) {
        if (!nic.isUp() || nic.isLoopback()) {
          continue;
        }
        if (nic.getName().equals(defaultRoute)) {
          candidates.addFirst(nic);
        } else {
          candidates.add(nic);
        }
      }
    } catch (SocketException e) {
      return Optional.empty();
    }
    for (Class<?> family : List.of(Inet4Address.class, Inet6Address.class)) {
      for (NetworkInterface nic : candidates) {
        for (InetAddress a : nic.inetAddresses().toList()) {
          if (family.isInstance(a)
              && !a.isLoopbackAddress()
              && !a.isLinkLocalAddress()
              && !a.isAnyLocalAddress()) {
            String text = a.getHostAddress();
            int zone = text.indexOf('%');
            return Optional.of(zone < 0 ? text : text.substring(0, zone));
          }
        }
      }
    }
    return Optional.empty();
  }

  /** The interface of the IPv4 default route, or null (not Linux, or no default route). */
  private static String defaultRouteInterface() {
    try {
      List<String> lines = Files.readAllLines(Path.of("/proc/net/route"));
      for (String line : lines.subList(Math.min(1, lines.size()), lines.size())) {
        String[] f = line.trim().split("\\s+");
        if (f.length > 2 && f[1].equals("00000000")) {
          return f[0];
        }
      }
    } catch (IOException | RuntimeException e) {
      // not Linux
    }
    return null;
  }
}
