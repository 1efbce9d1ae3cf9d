package dev.trellis.dataplane.agent;

import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InterfaceAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The UDP endpoints other nodes may reach this one at: every non-loopback address of the host's
 * interfaces that are up, except the Trellis interface itself and IPv6 link-local addresses
 * (useless without a zone), each with the WireGuard listen port.
 */
public final class HostEndpoints {
  private static final Logger LOG = LoggerFactory.getLogger(HostEndpoints.class);

  private HostEndpoints() {}

  /** Sorted, so two scans compare equal when nothing changed. */
  public static List<String> scan(String trellisInterface, int port) {
    TreeSet<String> out = new TreeSet<>();
    for (InetAddress address : addresses(trellisInterface)) {
      out.add(Endpoints.format(address, port));
    }
    return List.copyOf(out);
  }

  /** Whether this host has a usable address of the same family as {@code address}. */
  public static boolean hasFamily(String trellisInterface, InetAddress address) {
    for (InetAddress mine : addresses(trellisInterface)) {
      if ((mine instanceof Inet4Address) == (address instanceof Inet4Address)) {
        return true;
      }
    }
    return false;
  }

  static List<InetAddress> addresses(String trellisInterface) {
    List<InetAddress> out = new ArrayList<>();
    try {
      for (NetworkInterface nic : NetworkInterface.networkInterfaces().toList()) {
        if (nic.getName().equals(trellisInterface) || !nic.isUp() || nic.isLoopback()) {
          continue;
        }
        for (InterfaceAddress ia : nic.getInterfaceAddresses()) {
          InetAddress a = ia.getAddress();
          if (a.isLoopbackAddress() || (a instanceof Inet6Address && a.isLinkLocalAddress())) {
            continue;
          }
          out.add(a);
        }
      }
    } catch (SocketException e) {
      LOG.warn("cannot list network interfaces", e);
    }
    return out;
  }
}
