package dev.trellis.dataplane.uapi;

import dev.trellis.dataplane.wireguard.Device;
import dev.trellis.proto.wireguard.AllowedIps;
import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * WireGuard's cross-platform userspace API, the text protocol `wg` speaks to a userspace daemon.
 *
 * <pre>
 * request:  "get=1\n\n"                      reply: key=value lines, then "errno=0\n\n"
 * request:  "set=1\n" key=value lines "\n"   reply: "errno=N\n\n" (0, or a negative errno)
 * </pre>
 *
 * Device keys: private_key, listen_port, fwmark, replace_peers. A public_key line starts a peer
 * section with keys remove, update_only, preshared_key, endpoint, persistent_keepalive_interval,
 * replace_allowed_ips, allowed_ip, protocol_version. Keys are lowercase hex. Unlike a line-by-line
 * applier, a set request is parsed and validated whole before anything changes, so a bad request
 * leaves the device exactly as it was.
 */
public final class UapiProtocol {
  public static final int EINVAL = 22;
  public static final int EADDRINUSE = 98;
  public static final int EIO = 5;
  private static final HexFormat HEX = HexFormat.of();

  private UapiProtocol() {}

  /** A request the protocol refuses, with the errno the reply carries. */
  public static final class UapiException extends Exception {
    private final int errno;

    public UapiException(int errno, String message) {
      super(message);
      this.errno = errno;
    }

    public int errno() {
      return errno;
    }
  }

  public static String get(Device device) {
    StringBuilder out = new StringBuilder();
    byte[] privateKey = device.privateKey();
    if (privateKey != null) {
      out.append("private_key=").append(HEX.formatHex(privateKey)).append('\n');
    }
    out.append("listen_port=").append(device.listenPort()).append('\n');
    if (device.fwmark() != 0) {
      out.append("fwmark=").append(device.fwmark()).append('\n');
    }
    for (Device.PeerStatus peer : device.peerStatuses()) {
      out.append("public_key=").append(HEX.formatHex(peer.publicKey())).append('\n');
      out.append("preshared_key=").append(HEX.formatHex(peer.presharedKey())).append('\n');
      out.append("protocol_version=1\n");
      if (peer.endpoint() != null) {
        out.append("endpoint=").append(formatEndpoint(peer.endpoint())).append('\n');
      }
      out.append("last_handshake_time_sec=")
          .append(peer.lastHandshakeEpochNanos() / 1_000_000_000L)
          .append('\n');
      out.append("last_handshake_time_nsec=")
          .append(peer.lastHandshakeEpochNanos() % 1_000_000_000L)
          .append('\n');
      out.append("tx_bytes=").append(peer.txBytes()).append('\n');
      out.append("rx_bytes=").append(peer.rxBytes()).append('\n');
      out.append("persistent_keepalive_interval=")
          .append(peer.persistentKeepaliveSeconds())
          .append('\n');
      for (AllowedIps.Prefix prefix : peer.allowedIps()) {
        out.append("allowed_ip=").append(prefix).append('\n');
      }
    }
    return out.toString();
  }

  static String formatEndpoint(InetSocketAddress endpoint) {
    InetAddress address = endpoint.getAddress();
    String host = address.getHostAddress();
    if (address instanceof Inet6Address) {
      int zone = host.indexOf('%');
      return "[" + (zone < 0 ? host : host.substring(0, zone)) + "]:" + endpoint.getPort();
    }
    return host + ":" + endpoint.getPort();
  }

  // ---- set ---------------------------------------------------------------------------------

  private record PeerChange(
      byte[] publicKey,
      boolean remove,
      boolean updateOnly,
      byte[] presharedKey,
      InetSocketAddress endpoint,
      Integer persistentKeepalive,
      boolean replaceAllowedIps,
      List<AllowedIps.Prefix> allowedIps) {}

  private static final class PeerChangeBuilder {
    byte[] publicKey;
    boolean remove;
    boolean updateOnly;
    byte[] presharedKey;
    InetSocketAddress endpoint;
    Integer persistentKeepalive;
    boolean replaceAllowedIps;
    final List<AllowedIps.Prefix> allowedIps = new ArrayList<>();

    PeerChange build() {
      return new PeerChange(
          publicKey,
          remove,
          updateOnly,
          presharedKey,
          endpoint,
          persistentKeepalive,
          replaceAllowedIps,
          List.copyOf(allowedIps));
    }
  }

  /** Parses a whole set request (the lines after "set=1"), then applies it. */
  public static void set(Device device, List<String> lines) throws UapiException {
    byte[] privateKey = null;
    Integer listenPort = null;
    Integer fwmark = null;
    boolean replacePeers = false;
    List<PeerChange> peers = new ArrayList<>();
    PeerChangeBuilder peer = null;
    for (String line : lines) {
      int eq = line.indexOf('=');
      if (eq <= 0) {
        throw invalid("line without key=value: '" + line + "'");
      }
      String key = line.substring(0, eq);
      String value = line.substring(eq + 1);
      if (key.equals("public_key")) {
        if (peer != null) {
          peers.add(peer.build());
        }
        peer = new PeerChangeBuilder();
        peer.publicKey = parseKey(key, value);
        continue;
      }
      if (peer == null) {
        switch (key) {
          case "private_key" -> privateKey = parseKey(key, value);
          case "listen_port" -> listenPort = parseInt(key, value, 0, 65535);
          case "fwmark" -> fwmark = parseInt(key, value, 0, Integer.MAX_VALUE);
          case "replace_peers" -> replacePeers = parseTrue(key, value);
          default -> throw invalid("unknown device key '" + key + "'");
        }
        continue;
      }
      switch (key) {
        case "remove" -> peer.remove = parseTrue(key, value);
        case "update_only" -> peer.updateOnly = parseTrue(key, value);
        case "preshared_key" -> peer.presharedKey = parseKey(key, value);
        case "endpoint" -> peer.endpoint = parseEndpoint(value);
        case "persistent_keepalive_interval" ->
            peer.persistentKeepalive = parseInt(key, value, 0, 65535);
        case "replace_allowed_ips" -> peer.replaceAllowedIps = parseTrue(key, value);
        case "allowed_ip" -> peer.allowedIps.add(parsePrefix(value));
        case "protocol_version" -> {
          if (!value.equals("1")) {
            throw invalid("unsupported protocol_version " + value);
          }
        }
        default -> throw invalid("unknown peer key '" + key + "'");
      }
    }
    if (peer != null) {
      peers.add(peer.build());
    }
    apply(device, privateKey, listenPort, fwmark, replacePeers, peers);
  }

  private static void apply(
      Device device,
      byte[] privateKey,
      Integer listenPort,
      Integer fwmark,
      boolean replacePeers,
      List<PeerChange> peers)
      throws UapiException {
    synchronized (device) {
      if (listenPort != null) {
        try {
          device.setListenPort(listenPort);
        } catch (IOException e) {
          throw new UapiException(
              EADDRINUSE, "cannot listen on port " + listenPort + ": " + e.getMessage());
        }
      }
      if (privateKey != null) {
        device.setPrivateKey(privateKey);
      }
      if (fwmark != null) {
        device.setFwmark(fwmark);
      }
      if (replacePeers) {
        device.removeAllPeers();
      }
      for (PeerChange change : peers) {
        applyPeer(device, change);
      }
    }
  }

  private static void applyPeer(Device device, PeerChange change) {
    byte[] key = change.publicKey();
    if (change.remove()) {
      device.removePeer(key);
      return;
    }
    if (!device.hasPeer(key)) {
      if (change.updateOnly() || !device.addPeer(key)) {
        return; // update_only of an absent peer, or our own key: ignored as wireguard-go does
      }
    }
    if (change.presharedKey() != null) {
      device.setPeerPresharedKey(key, change.presharedKey());
    }
    if (change.endpoint() != null) {
      device.setPeerEndpoint(key, change.endpoint());
    }
    if (change.replaceAllowedIps()) {
      device.replacePeerAllowedIps(key);
    }
    for (AllowedIps.Prefix prefix : change.allowedIps()) {
      device.addPeerAllowedIp(key, prefix);
    }
    if (change.persistentKeepalive() != null) {
      device.setPeerPersistentKeepalive(key, change.persistentKeepalive());
    }
  }

  private static UapiException invalid(String message) {
    return new UapiException(EINVAL, message);
  }

  private static byte[] parseKey(String key, String value) throws UapiException {
    if (value.length() != 64) {
      throw invalid(key + " must be 64 hex digits");
    }
    try {
      return HEX.parseHex(value);
    } catch (IllegalArgumentException e) {
      throw invalid(key + " is not hex: " + e.getMessage());
    }
  }

  private static int parseInt(String key, String value, int min, int max) throws UapiException {
    try {
      long v = Long.parseLong(value);
      if (v < min || v > max) {
        throw invalid(key + " out of range: " + value);
      }
      return (int) v;
    } catch (NumberFormatException e) {
      throw invalid(key + " is not a number: '" + value + "'");
    }
  }

  private static boolean parseTrue(String key, String value) throws UapiException {
    if (!value.equals("true")) {
      throw invalid(key + " only takes the value true");
    }
    return true;
  }

  private static AllowedIps.Prefix parsePrefix(String value) throws UapiException {
    try {
      return AllowedIps.Prefix.parse(value);
    } catch (IllegalArgumentException e) {
      throw invalid(e.getMessage());
    }
  }

  /** IPv4 "a.b.c.d:port" or IPv6 "[addr]:port"; `wg` has already resolved host names. */
  static InetSocketAddress parseEndpoint(String value) throws UapiException {
    int colon = value.lastIndexOf(':');
    if (colon <= 0) {
      throw invalid("endpoint needs host:port, got '" + value + "'");
    }
    String host = value.substring(0, colon);
    int port = parseInt("endpoint port", value.substring(colon + 1), 1, 65535);
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
      int zone = host.indexOf('%');
      if (zone >= 0) {
        host = host.substring(0, zone);
      }
    } else if (host.contains(":")) {
      throw invalid("IPv6 endpoint must be in brackets: '" + value + "'");
    }
    if (!host.matches("[0-9a-fA-F:.]+")) {
      throw invalid("endpoint must be a numeric address: '" + value + "'");
    }
    try {
      return new InetSocketAddress(InetAddress.getByName(host), port);
    } catch (UnknownHostException e) {
      throw invalid("bad endpoint address '" + host + "'");
    }
  }
}
