package dev.trellis.system.harness;

import dev.trellis.system.netns.Commands;
import dev.trellis.system.netns.HostProcess;
import dev.trellis.system.netns.Netns;
import dev.trellis.system.netns.NetworkNamespace;
import dev.trellis.system.netns.Prerequisites;
import java.io.PrintStream;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The Trellis processes of one test network and the {@link Netns} bed they run in: what a topology
 * (the control lab's bridged LAN, the campus's routed zones) builds on. It makes the servers and
 * agents, keeps the other processes the topology starts (relays, delay lines), prints all of them
 * when a test fails ({@link FailureDump}, after the topology's own {@code details}), and on {@link
 * #close()} stops them in order (agents first, so that a clean SIGTERM lets them remove their wg
 * sockets; then servers; then the rest), then removes the bed.
 */
public final class TestEnv implements AutoCloseable, FailureDump.Source {
  private final String name;
  private final Netns bed;
  private final FailureDump.Source details;
  private final List<TrellisServerProcess> servers = new CopyOnWriteArrayList<>();
  private final List<TrellisAgentProcess> agents = new CopyOnWriteArrayList<>();
  private final List<HostProcess> others = new CopyOnWriteArrayList<>();

  private TestEnv(String name, Netns bed, FailureDump.Source details) {
    this.name = name;
    this.bed = bed;
    this.details = details;
  }

  /**
   * A new, empty environment named {@code name}, with nothing of its topology's own to print on
   * failure.
   */
  public static TestEnv create(String name) {
    return create(name, out -> {});
  }

  /**
   * A new, empty environment named {@code name}; {@code details} prints the topology's own state
   * (addresses, rules) first when a test fails. Skips visibly without root; fails when Trellis is
   * not built.
   */
  public static TestEnv create(String name, FailureDump.Source details) {
    Prerequisites.check();
    Trellis.launcher();
    TestEnv env = new TestEnv(name, Netns.create(), details);
    FailureDump.track(env);
    return env;
  }

  public Netns bed() {
    return bed;
  }

  /**
   * A {@code trellis server} named {@code name} at {@code address} in {@code ns}, with a fresh data
   * directory; not started.
   */
  public TrellisServerProcess newServer(NetworkNamespace ns, String name, String address) {
    TrellisServerProcess server =
        new TrellisServerProcess(ns, name, address, bed.workDir().resolve("server-data-" + name));
    servers.add(server);
    return server;
  }

  /**
   * A {@code trellis agent} for {@code hostname} at {@code address} in {@code ns}, with a fresh
   * state directory and an interface named {@code interfacePrefix} plus random characters; not
   * started.
   */
  public TrellisAgentProcess newAgent(
      NetworkNamespace ns, String hostname, String address, String interfacePrefix) {
    TrellisAgentProcess agent =
        new TrellisAgentProcess(
            ns,
            hostname,
            address,
            bed.workDir().resolve("agent-" + hostname + "-" + Netns.random(4)),
            Netns.uniqueIfName(interfacePrefix));
    agents.add(agent);
    return agent;
  }

  /** Another process of the topology: printed on failure, stopped after the servers. Returns it. */
  public HostProcess keep(HostProcess process) {
    others.add(process);
    return process;
  }

  public List<TrellisAgentProcess> agents() {
    return List.copyOf(agents);
  }

  @Override
  public void dumpDiagnostics(PrintStream out) {
    out.println("===== " + name + " (" + bed.workDir() + ") =====");
    section(out, "topology", () -> details.dumpDiagnostics(out));
    for (TrellisServerProcess server : servers) {
      section(out, server.toString(), () -> server.dumpDiagnostics(out));
    }
    for (HostProcess p : others) {
      out.println(
          "--- " + p + " alive=" + p.isAlive() + " log tail:\n" + Commands.tail(p.output(), 40));
    }
    for (TrellisAgentProcess agent : agents) {
      section(out, agent.toString(), () -> agent.dumpDiagnostics(out));
    }
    out.println("===== end of " + name + " =====");
  }

  private static void section(PrintStream out, String what, Runnable dump) {
    try {
      dump.run();
    } catch (RuntimeException e) {
      out.println("(diagnostics of " + what + " failed: " + e + ")");
    }
  }

  @Override
  public void close() {
    try {
      agents.forEach(TrellisAgentProcess::stop);
      servers.forEach(s -> s.shutdown(Duration.ofSeconds(20)));
      for (HostProcess p : others) {
        if (p.isAlive() && p.terminate(Duration.ofSeconds(10)).isEmpty()) {
          p.stop();
        }
      }
    } catch (RuntimeException | Error e) {
      System.err.println("[harness] stopping the processes of " + name + ": " + e);
    } finally {
      bed.close();
      agents.forEach(TrellisAgentProcess::removeSocket);
      FailureDump.forget(this);
    }
  }

  @Override
  public String toString() {
    return name;
  }
}
