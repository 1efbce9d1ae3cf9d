package dev.trellis.dataplane.dns;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host's resolver when systemd-resolved is it. The Trellis interface gets, as per-link
 * settings: the node's resolver as its DNS server; the base domain as its search domain (so bare
 * names work); the overlay's reverse zones as routing-only domains ({@code ~zone}); no default
 * route, and no LLMNR or mDNS over the overlay. Every other name keeps going where it went: that is
 * resolved's own split DNS, and it also answers {@code /etc/resolv.conf}'s stub, so the file is not
 * touched.
 *
 * <p>Set and reverted with {@code resolvectl}, resolved's command-line front end to its public
 * D-Bus interface ({@code org.freedesktop.resolve1}: SetLinkDNS, SetLinkDomains,
 * SetLinkDefaultRoute, RevertLink); it ships with resolved, so a host that has one has the other.
 * The settings belong to the link: when an agent dies the kernel removes its interface and resolved
 * forgets them, so a crash leaves nothing to clean up.
 *
 * <p>Threads: the agent loop only.
 */
public final class ResolvedLink implements HostResolver {
  private static final Logger LOG = LoggerFactory.getLogger(ResolvedLink.class);

  /** resolved's stub listener, which a resolv.conf it manages points at. */
  private static final String STUB = "127.0.0.53";

  private static final long COMMAND_TIMEOUT_SECONDS = 10;

  private final String resolvectl;
  private final String interfaceName;

  private ResolvedLink(String resolvectl, String interfaceName) {
    this.resolvectl = resolvectl;
    this.interfaceName = interfaceName;
  }

  /** Whether {@code resolvConf} is resolved's: a link into its run directory, or its stub in it. */
  static boolean managesResolvConf(Path resolvConf) {
    try {
      if (Files.isSymbolicLink(resolvConf)
          && Files.readSymbolicLink(resolvConf).toString().contains("systemd/resolve/")) {
        return true;
      }
      if (!Files.isRegularFile(resolvConf)) return false;
      return Files.readString(resolvConf, StandardCharsets.UTF_8)
          .lines()
          .map(l -> l.strip().split("\\s+"))
          .anyMatch(f -> f.length >= 2 && f[0].equals("nameserver") && f[1].equals(STUB));
    } catch (IOException e) {
      return false;
    }
  }

  /** resolved on this host, if {@code resolvectl} is on the path and resolved answers it. */
  static Optional<HostResolver> ifRunning(String interfaceName) {
    Optional<String> command = onPath("resolvectl");
    if (command.isEmpty()) {
      LOG.info("resolv.conf points at systemd-resolved but resolvectl is not installed");
      return Optional.empty();
    }
    ResolvedLink link = new ResolvedLink(command.get(), interfaceName);
    try {
      link.run("status", "--no-pager");
      return Optional.of(link);
    } catch (IOException e) {
      LOG.info("resolv.conf points at systemd-resolved but it does not answer: {}", e.getMessage());
      return Optional.empty();
    }
  }

  @Override
  public String mode() {
    return "resolved";
  }

  @Override
  public void apply(InetAddress server, String baseDomain, List<String> reverseZones)
      throws IOException {
    run("dns", interfaceName, server.getHostAddress());
    List<String> domains = new ArrayList<>(List.of("domain", interfaceName, baseDomain));
    reverseZones.forEach(z -> domains.add("~" + z));
    run(domains.toArray(String[]::new));
    run("default-route", interfaceName, "false");
    run("llmnr", interfaceName, "false");
    run("mdns", interfaceName, "false");
    LOG.info("systemd-resolved sends *.{} to {} on {}", baseDomain, server, interfaceName);
  }

  @Override
  public void restore() {
    try {
      run("revert", interfaceName);
    } catch (IOException e) {
      // Gone with its interface, or resolved stopped: either way nothing of ours is left.
      LOG.debug("resolvectl revert {}: {}", interfaceName, e.getMessage());
    }
  }

  /** Other names never reach the node's resolver: resolved sends them where it always did. */
  @Override
  public List<InetSocketAddress> upstream() {
    return List.of();
  }

  private void run(String... args) throws IOException {
    List<String> argv = new ArrayList<>(List.of(resolvectl));
    argv.addAll(List.of(args));
    Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
    p.getOutputStream().close();
    var output =
        java.util.concurrent.CompletableFuture.supplyAsync(
            () -> {
              try {
                return p.getInputStream().readAllBytes();
              } catch (IOException e) {
                return new byte[0];
              }
            },
            Thread::startVirtualThread);
    try {
      if (!p.waitFor(COMMAND_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("resolvectl " + args[0] + " did not finish");
      }
      if (p.exitValue() != 0) {
        throw new IOException(
            "resolvectl "
                + String.join(" ", args)
                + ": "
                + new String(output.join(), StandardCharsets.UTF_8).strip());
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      p.destroyForcibly();
      throw new IOException("interrupted running resolvectl");
    }
  }

  private static Optional<String> onPath(String command) {
    String path = System.getenv("PATH");
    if (path == null) path = "/usr/bin:/bin";
    for (String dir : path.split(":")) {
      if (dir.isEmpty()) continue;
      Path p = Path.of(dir, command);
      if (Files.isExecutable(p)) return Optional.of(p.toString());
    }
    return Optional.empty();
  }
}
