package dev.trellis.dataplane.dns;

import dev.trellis.proto.control.ControlMessage;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Names on this node: the resolver ({@link OverlayResolver}) on {@link #ADDRESS}, the names it
 * answers ({@link OverlayNames}, rebuilt from every map), and the host's resolver pointed at it
 * while the node is up, put back when it goes down: through systemd-resolved where it runs, else by
 * editing resolv.conf ({@link HostResolver#detect}, decided each time names come on).
 *
 * <p>Threads: every method runs on the agent loop; the resolver thread reads {@link #names}.
 */
public final class NodeDns {
  private static final Logger LOG = LoggerFactory.getLogger(NodeDns.class);

  /** Where the node's resolver answers; the agent puts it on its interface. */
  public static final InetAddress ADDRESS = InetAddress.ofLiteral("100.100.100.100");

  private final Path resolvConf;
  private final Path stateDir;
  private final String interfaceName;

  /** How the host was pointed at the resolver; null while names are off. */
  private volatile HostResolver hostConfig;

  private volatile OverlayNames names;
  private volatile List<InetSocketAddress> upstream = List.of();
  private OverlayResolver resolver;

  public NodeDns(Path resolvConf, Path stateDir, String interfaceName) {
    this.resolvConf = resolvConf;
    this.stateDir = stateDir;
    this.interfaceName = interfaceName;
  }

  /**
   * At start: a previous agent killed while up left resolv.conf pointed at it; put that back.
   * (systemd-resolved forgot its settings when the killed agent's interface went.)
   */
  public void recover() {
    new ResolvConf(resolvConf, stateDir).restore();
  }

  /** Whether names are on (the server sent a base domain). */
  public boolean enabled() {
    return names != null;
  }

  /** New map: new names; the resolver and the host's configuration follow. */
  public void update(
      ControlMessage.DnsInfo dns,
      List<String> overlayPrefixes,
      ControlMessage.NodeInfo self,
      Collection<ControlMessage.NodeInfo> peers) {
    OverlayNames next = OverlayNames.of(dns, self, peers);
    if (next == null) {
      stop();
      return;
    }
    names = next;
    if (resolver != null) return;
    try {
      hostConfig = HostResolver.detect(resolvConf, stateDir, interfaceName);
      upstream = upstreamOf(dns);
      resolver =
          OverlayResolver.start(new InetSocketAddress(ADDRESS, 53), () -> names, () -> upstream);
      hostConfig.apply(ADDRESS, dns.baseDomain(), ReverseZones.of(overlayPrefixes));
      LOG.info(
          "names: *.{} answered at {} ({})",
          dns.baseDomain(),
          ADDRESS.getHostAddress(),
          hostConfig.mode());
    } catch (IOException e) {
      LOG.warn(
          "names are off: cannot serve them at {}: {}", ADDRESS.getHostAddress(), e.getMessage());
      stop();
    }
  }

  /** The host's own name servers, then the ones the server named for the overlay. */
  private List<InetSocketAddress> upstreamOf(ControlMessage.DnsInfo dns) {
    List<InetSocketAddress> out = new ArrayList<>();
    for (InetSocketAddress s : hostConfig.upstream()) {
      if (!s.getAddress().equals(ADDRESS)) out.add(s);
    }
    if (dns.nameservers() != null) {
      for (String s : dns.nameservers())
        out.add(new InetSocketAddress(InetAddress.ofLiteral(s), 53));
    }
    return List.copyOf(out);
  }

  /** Down, logged out or stopping: the host's resolver configuration as it was, no resolver. */
  public void stop() {
    names = null;
    if (hostConfig != null) {
      hostConfig.restore();
      hostConfig = null;
    }
    if (resolver != null) {
      resolver.close();
      resolver = null;
    }
  }

  /** How the host sends overlay names here ({@link HostResolver#mode}); null while off. */
  public String mode() {
    HostResolver h = hostConfig;
    return h == null ? null : h.mode();
  }

  /** What the resolver did, for status; null when it is not running. */
  public OverlayResolver.Counters counters() {
    OverlayResolver r = resolver;
    return r == null ? null : r.counters();
  }
}
