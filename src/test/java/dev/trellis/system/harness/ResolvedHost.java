package dev.trellis.system.harness;

import dev.trellis.system.netns.Await;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

/**
 * Makes a namespace a host whose resolver is systemd-resolved, as on Ubuntu and many Debian
 * installs: {@code /etc/resolv.conf} a link to resolved's stub file, resolved on 127.0.0.53 with
 * the campus name server upstream, and its D-Bus interface on a system bus of the host's own.
 *
 * <p>All of it lives in a private mount namespace inside the network namespace (its own /run/dbus,
 * /run/systemd and an overlay on /etc), so nothing of the machine's changes; every later command in
 * the namespace enters it ({@link NetworkNamespace#enterVia}). resolved and resolvectl come from
 * Debian's {@code systemd-resolved} package unpacked, not installed ({@code .ci/run} does it:
 * installing it would take over the machine's own resolv.conf), in {@link #ROOT} or {@code
 * $TRELLIS_TEST_SYSTEMD_RESOLVED}; resolved runs as {@code nobody} with the capabilities it needs
 * (it refuses to run as root without its own user).
 */
public final class ResolvedHost {
  public static final Path ROOT = Path.of("/opt/trellis-test/systemd-resolved");
  private static final Duration WAIT = Duration.ofSeconds(20);

  private static final String BUS_CONFIG =
      """
      <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
       "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
      <busconfig>
        <type>system</type>
        <listen>unix:path=/run/dbus/system_bus_socket</listen>
        <auth>EXTERNAL</auth>
        <policy context="default">
          <allow user="*"/>
          <allow own="*"/>
          <allow send_destination="*"/>
          <allow receive_sender="*"/>
        </policy>
      </busconfig>
      """;

  /** Runs as root in a fresh mount namespace; ends as systemd-resolved (same PID). */
  private static final String HOLDER =
      """
      #!/bin/bash
      # usage: ROOT BUS_CONFIG UPSTREAM SEARCH
      set -euo pipefail
      R=$1
      mkdir -p /run/dbus
      mount -t tmpfs -o mode=755 tmpfs /run/dbus
      mount -t tmpfs -o mode=755 tmpfs /run/systemd
      mkdir -p /run/systemd/resolve /run/systemd/resolved.conf.d /run/etc/upper /run/etc/work
      chown nobody:nogroup /run/systemd/resolve
      printf '[Resolve]\\nDNS=%s\\nDomains=%s\\nLLMNR=no\\nMulticastDNS=no\\nDNSSEC=no\\n' "$3" "$4" \\
        > /run/systemd/resolved.conf.d/campus.conf
      mount -t overlay overlay \\
        -o lowerdir=/etc,upperdir=/run/etc/upper,workdir=/run/etc/work /etc
      ln -sfn ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
      dbus-daemon --config-file="$2" --nofork --nopidfile &
      for _ in $(seq 200); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.05; done
      export LD_LIBRARY_PATH=$R/usr/lib/x86_64-linux-gnu/systemd
      caps=+net_bind_service,+net_raw,+setpcap
      exec setpriv --reuid=nobody --regid=nogroup --clear-groups \\
        --inh-caps=$caps --ambient-caps=$caps "$R/lib/systemd/systemd-resolved"
      """;

  private final HostProcess resolved;
  private final Path bin;

  private ResolvedHost(HostProcess resolved, Path bin) {
    this.resolved = resolved;
    this.bin = bin;
  }

  /** Where the unpacked package is; fails with how to get it when it is missing. */
  public static Path root() {
    String env = System.getenv("TRELLIS_TEST_SYSTEMD_RESOLVED");
    Path root = env != null && !env.isBlank() ? Path.of(env) : ROOT;
    if (!Files.isExecutable(root.resolve("lib/systemd/systemd-resolved"))) {
      throw new IllegalStateException(
          "systemd-resolved is not unpacked in "
              + root
              + " (.ci/run does it: apt-get download systemd-resolved libsystemd-shared, then"
              + " dpkg-deb -x each into that directory)");
    }
    return root;
  }

  /**
   * Starts resolved in {@code ns} with {@code upstream} as its name server and {@code search} as
   * its search domain, and waits until it answers on D-Bus.
   */
  public static ResolvedHost start(NetworkNamespace ns, String upstream, String search) {
    Path root = root();
    Tools.require("dbus-daemon");
    Tools.require("setpriv");
    Tools.require("unshare");
    var owner = ns.owner();
    Path busConfig = owner.writeSecret("bus-" + ns.name() + ".conf", BUS_CONFIG);
    Path holder = owner.writeExecutable("resolved-" + ns.name() + ".sh", HOLDER);
    Path bin = owner.workDir().resolve("resolved-bin-" + ns.name());
    try {
      Files.createDirectories(bin);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    owner.writeExecutable(
        bin.getFileName() + "/resolvectl",
        "#!/bin/sh\nLD_LIBRARY_PATH="
            + root.resolve("usr/lib/x86_64-linux-gnu/systemd")
            + " exec "
            + root.resolve("usr/bin/resolvectl")
            + " \"$@\"\n");
    HostProcess resolved =
        ns.start(
            "systemd-resolved",
            Map.of(),
            Tools.require("unshare"),
            "--mount",
            "--propagation",
            "private",
            holder.toString(),
            root.toString(),
            busConfig.toString(),
            upstream,
            search);
    ns.enterVia(resolved.pid());
    ResolvedHost host = new ResolvedHost(resolved, bin);
    Await.until(
        "systemd-resolved answering on D-Bus in " + ns,
        WAIT,
        () -> {
          if (!resolved.isAlive()) {
            throw new IllegalStateException("systemd-resolved ended:\n" + resolved.output());
          }
          return ns.run(host.resolvectl(), "status", "--no-pager").ok();
        });
    return host;
  }

  /** {@code resolvectl} for this host (the unpacked one, with its library). */
  public String resolvectl() {
    return bin.resolve("resolvectl").toString();
  }

  /** The environment an agent needs to find {@code resolvectl}. */
  public Map<String, String> agentEnv() {
    return Map.of("PATH", bin + ":" + System.getenv().getOrDefault("PATH", "/usr/bin:/bin"));
  }

  /** resolved's view of one link ({@code resolvectl status LINK}). */
  public String linkStatus(NetworkNamespace ns, String link) {
    return ns.run(resolvectl(), "status", "--no-pager", link).stdout();
  }

  public HostProcess process() {
    return resolved;
  }
}
