package dev.trellis.dataplane.agent;

import dev.trellis.proto.wireguard.AllowedIps;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;

/**
 * Endpoints and addresses as the control protocol writes them: "IP:port", "[IPv6]:port", compressed
 * IPv6.
 */
public final class Endpoints {
  private Endpoints() {}

  /** "IP:port" or "[IPv6]:port", numeric only (no DNS); null if malformed. */
  public static InetSocketAddress parse(String text) {
    if (text == null) {
      return null;
    }
    String s = text.strip();
    String host;
    String port;
    if (s.startsWith("[")) {
      int close = s.indexOf("]:");
      if (close < 0) {
        return null;
      }
      host = s.substring(1, close);
      port = s.substring(close + 2);
    } else {
      int colon = s.lastIndexOf(':');
      if (colon < 0 || s.indexOf(':') != colon) {
        return null;
      }
      host = s.substring(0, colon);
      port = s.substring(colon + 1);
    }
    try {
      int p = Integer.parseInt(port);
      if (p < 1 || p > 65535) {
        return null;
      }
      InetAddress address = AllowedIps.Prefix.parse(host).address();
      return new InetSocketAddress(address, p);
    } catch (IllegalArgumentException e) {
      return null;
    }
  }

  /** "IP:port" / "[IPv6]:port" as the control protocol writes endpoints. */
  public static String format(InetAddress address, int port) {
    String host = address(address);
    return address instanceof Inet6Address ? "[" + host + "]:" + port : host + ":" + port;
  }

  /** Canonical text (compressed IPv6, no zone), as the server writes addresses. */
  public static String address(InetAddress address) {
    String prefix =
        new AllowedIps.Prefix(address, address instanceof Inet4Address ? 32 : 128).toString();
    return prefix.substring(0, prefix.indexOf('/'));
  }

  public static String format(InetSocketAddress endpoint) {
    return format(endpoint.getAddress(), endpoint.getPort());
  }

  /** Like {@link #parse} but also null for text that does not even look like an endpoint. */
  static InetSocketAddress parseOrNull(String text) {
    try {
      return parse(text);
    } catch (RuntimeException e) {
      return null;
    }
  }
}
