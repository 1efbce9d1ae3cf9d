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
 * answers ({@link OverlayNames}, rebuilt from every map), and the host's resolver configuration
 * pointed at it ({@link ResolvConf}) while the node is up, put back when it goes down.
 *
 * <p>Threads: every method runs on the agent loop; the resolver thread reads {@link #names}.
 */
public final class NodeDns {
  private static final Logger LOG = LoggerFactory.getLogger(NodeDns.class);

  /** Where the node's resolver answers; the agent puts it on its interface. */
  public static final InetAddress ADDRESS = InetAddress.ofLiteral("100.100.100.100");

  private final ResolvConf hostConfig;
  private volatile OverlayNames names;
  private volatile List<InetSocketAddress> upstream = List.of();
  private OverlayResolver resolver;

  public NodeDns(Path resolvConf, Path stateDir) {
    this.hostConfig = new ResolvConf(resolvConf, stateDir);
  }

  /** At start: a previous agent killed while up left the host pointed at it; put that back. */
  public void recover() {
    hostConfig.restore();
  }

  /** Whether names are on (the server sent a base domain). */
  public boolean enabled() {
    return names != null;
  }

  /** New map: new names; the resolver and the host's configuration follow. */
  public void update(
      ControlMessage.DnsInfo dns,
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
      upstream = upstreamOf(dns);
      resolver =
          OverlayResolver.start(new InetSocketAddress(ADDRESS, 53), () -> names, () -> upstream);
      hostConfig.apply(ADDRESS, dns.baseDomain());
      LOG.info("names: *.{} answered at {}", dns.baseDomain(), ADDRESS.getHostAddress());
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
    hostConfig.restore();
    if (resolver != null) {
      resolver.close();
      resolver = null;
    }
  }

  /** What the resolver did, for status; null when it is not running. */
  public OverlayResolver.Counters counters() {
    OverlayResolver r = resolver;
    return r == null ? null : r.counters();
  }
}
