package dev.trellis.dataplane.dns;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.List;

/**
 * How this host's own resolver is told about the overlay: through systemd-resolved where it is the
 * resolver ({@link ResolvedLink}), otherwise by editing {@code /etc/resolv.conf} ({@link
 * ResolvConf}). Either way applications keep asking the host's resolver (glibc, Java, Python, ROS);
 * only where overlay names go changes.
 *
 * <p>Threads: the agent loop only.
 */
public sealed interface HostResolver permits ResolvConf, ResolvedLink {
  /** The mode's name for {@code trellis status}: {@code resolved} or {@code file}. */
  String mode();

  /**
   * Sends names under {@code baseDomain} (and bare names, through the search list) and the reverse
   * names under {@code reverseZones} to {@code server}.
   */
  void apply(InetAddress server, String baseDomain, List<String> reverseZones) throws IOException;

  /** Puts the host's configuration back as it was before {@link #apply}. */
  void restore();

  /** The name servers the node's resolver forwards other names to. */
  List<InetSocketAddress> upstream();

  /**
   * The mode this host needs: systemd-resolved when {@code resolvConf} points at its stub and it
   * answers on D-Bus, otherwise the file.
   */
  static HostResolver detect(Path resolvConf, Path stateDir, String interfaceName) {
    if (ResolvedLink.managesResolvConf(resolvConf)) {
      var resolved = ResolvedLink.ifRunning(interfaceName);
      if (resolved.isPresent()) return resolved.get();
    }
    return new ResolvConf(resolvConf, stateDir);
  }
}
