package dev.trellis.persistence.postgres;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * A throwaway PostgreSQL server for tests: Debian's own binaries ({@code apt-get install
 * postgresql}), a fresh cluster in a temporary directory, on a free loopback port, trust
 * authentication for the test user only on 127.0.0.1. As root (CI) it runs as the {@code postgres}
 * user, which PostgreSQL requires. Tests are skipped, with the reason, when the binaries are
 * missing.
 */
public final class LocalPostgres implements AutoCloseable {
  public static final String USER = "trellis";
  private static final long START_TIMEOUT_MS = 60_000;

  private final Path dir;
  private final Process process;
  private final int port;
  private final Path log;
  private final Path bin;

  /** The TCP address it listens on; other than loopback when it runs in a network namespace. */
  private final String address;

  private LocalPostgres(Path dir, Process process, int port, Path log, Path bin, String address) {
    this.dir = dir;
    this.process = process;
    this.port = port;
    this.log = log;
    this.bin = bin;
    this.address = address;
  }

  /**
   * The directory holding {@code initdb} and {@code postgres}: $TRELLIS_PG_BIN or the newest
   * /usr/lib/postgresql/N/bin.
   */
  static Optional<Path> binaries() {
    String env = System.getenv("TRELLIS_PG_BIN");
    if (env != null && !env.isBlank()) {
      return Optional.of(Path.of(env));
    }
    Path root = Path.of("/usr/lib/postgresql");
    if (!Files.isDirectory(root)) {
      return Optional.empty();
    }
    try (Stream<Path> versions = Files.list(root)) {
      return versions
          .map(v -> v.resolve("bin"))
          .filter(
              b ->
                  Files.isExecutable(b.resolve("initdb"))
                      && Files.isExecutable(b.resolve("postgres")))
          .max(Comparator.comparing(b -> versionOf(b.getParent().getFileName().toString())));
    } catch (IOException e) {
      return Optional.empty();
    }
  }

  private static int versionOf(String name) {
    try {
      return Integer.parseInt(name);
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  private static boolean root() {
    return "root".equals(System.getProperty("user.name"));
  }

  /** Starts a server; skips the calling test (visibly) when PostgreSQL is not installed. */
  public static LocalPostgres start() throws IOException, InterruptedException {
    return start(List.of(), "127.0.0.1");
  }

  /**
   * A server started through {@code prefix} (e.g. {@code ip netns exec NS}, to run it inside a
   * test's network namespace) listening on {@code address}. Outside that namespace the test reaches
   * it through its Unix socket, with PostgreSQL's own client programs.
   */
  public static LocalPostgres start(List<String> prefix, String address)
      throws IOException, InterruptedException {
    Optional<Path> bin = binaries();
    Assumptions.assumeTrue(
        bin.isPresent(),
        "PostgreSQL is not installed (apt-get install postgresql, or set TRELLIS_PG_BIN): skipping a test that needs it");
    Path dir = Files.createTempDirectory(Path.of("/tmp"), "trellis-pg-");
    Path data = dir.resolve("data");
    Path log = dir.resolve("postgres.log");
    if (root()) {
      run(List.of("chown", "postgres:postgres", dir.toString()));
    }
    run(
        asOwner(
            List.of(
                bin.get().resolve("initdb").toString(),
                "-D",
                data.toString(),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync")));
    if (!"127.0.0.1".equals(address)) {
      // Inside a test's own network namespace: the servers there connect over TCP from their own
      // addresses.
      Files.writeString(
          data.resolve("pg_hba.conf"), "host all all 0.0.0.0/0 trust\n", StandardOpenOption.APPEND);
    }
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    List<String> command = new ArrayList<>(prefix);
    command.addAll(
        asOwner(
            List.of(
                bin.get().resolve("postgres").toString(),
                "-D",
                data.toString(),
                "-p",
                Integer.toString(port),
                "-k",
                dir.toString(),
                "-c",
                "listen_addresses=" + address,
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200")));
    ProcessBuilder pb = new ProcessBuilder(command);
    pb.redirectErrorStream(true);
    pb.redirectOutput(log.toFile());
    Process process = pb.start();
    LocalPostgres pg = new LocalPostgres(dir, process, port, log, bin.get(), address);
    try {
      pg.awaitReady();
    } catch (IOException | RuntimeException e) {
      pg.close();
      throw e;
    }
    return pg;
  }

  private static List<String> asOwner(List<String> command) {
    if (!root()) {
      return command;
    }
    // setpriv execs in place (no parent left in between), so stopping the process stops postgres
    // itself.
    List<String> c =
        new ArrayList<>(
            List.of("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"));
    c.addAll(command);
    return c;
  }

  private static void run(List<String> command) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IOException(String.join(" ", command) + " failed:\n" + out);
    }
  }

  private void awaitReady() throws IOException, InterruptedException {
    long deadline = System.currentTimeMillis() + START_TIMEOUT_MS;
    SQLException last = null;
    while (System.currentTimeMillis() < deadline) {
      if (!process.isAlive()) {
        throw new IOException(
            "postgres exited with " + process.exitValue() + ":\n" + Files.readString(log));
      }
      if (!namespaced()) {
        try (Connection c = DriverManager.getConnection(jdbcUrl("postgres"), USER, "")) {
          return;
        } catch (SQLException e) {
          last = e;
        }
      } else if (new ProcessBuilder(
                  bin.resolve("pg_isready").toString(),
                  "-q",
                  "-h",
                  dir.toString(),
                  "-p",
                  Integer.toString(port))
              .redirectErrorStream(true)
              .redirectOutput(ProcessBuilder.Redirect.DISCARD)
              .start()
              .waitFor()
          == 0) {
        return;
      }
      Thread.sleep(100); // polling the port: postgres has no readiness signal to wait on
    }
    throw new IOException(
        "postgres did not accept connections within "
            + START_TIMEOUT_MS
            + " ms: "
            + last
            + "\n"
            + Files.readString(log));
  }

  public int port() {
    return port;
  }

  public String jdbcUrl(String database) {
    return "jdbc:postgresql://" + address + ":" + port + "/" + database;
  }

  private boolean namespaced() {
    return !"127.0.0.1".equals(address);
  }

  /** A new, empty database; returns its JDBC URL. */
  public String createDatabase(String name) throws SQLException {
    if (!name.matches("[a-z][a-z0-9_]{0,62}")) {
      throw new IllegalArgumentException("database name " + name);
    }
    if (namespaced()) {
      try {
        run(
            List.of(
                bin.resolve("createdb").toString(),
                "-h",
                dir.toString(),
                "-p",
                Integer.toString(port),
                "-U",
                USER,
                name));
      } catch (IOException e) {
        throw new SQLException(e.getMessage(), e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new SQLException("interrupted", e);
      }
      return jdbcUrl(name);
    }
    try (Connection c = DriverManager.getConnection(jdbcUrl("postgres"), USER, "");
        Statement s = c.createStatement()) {
      s.execute("CREATE DATABASE " + name);
    }
    return jdbcUrl(name);
  }

  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    try (Stream<Path> paths = Files.walk(dir)) {
      for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      System.err.println("[postgres] could not remove " + dir + ": " + e);
    }
  }
}
