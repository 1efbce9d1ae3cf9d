package dev.trellis.dataplane.agent;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trellis.dataplane.lock.LockFile;
import dev.trellis.proto.control.ControlJson;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * What a node agent keeps on disk in its state directory (default /var/lib/trellis, mode 0700):
 *
 * <ul>
 *   <li>{@code machine.key}: the machine's identity towards the server (control channel), never
 *       rotated;
 *   <li>{@code node.key}: the WireGuard private key; peers know the node by its public half;
 *   <li>{@code state.json}: login server, hostname, whether the node is logged in and wants to run,
 *       so a restarted agent resumes without an auth key.
 * </ul>
 *
 * Keys are base64 as `wg genkey` writes them, in files of mode 0600.
 */
public final class AgentState {
  public static final Path DEFAULT_DIRECTORY = Path.of("/var/lib/trellis");
  public static final String DIRECTORY_VARIABLE = "TRELLIS_STATE_DIR";
  public static final String SOCKET_NAME = "agent.sock";
  public static final String LOCK_NAME = "agent.lock";
  private static final List<LockFile> HELD_LOCKS = new CopyOnWriteArrayList<>();
  static final Set<PosixFilePermission> FILE_MODE = PosixFilePermissions.fromString("rw-------");
  static final Set<PosixFilePermission> DIRECTORY_MODE =
      PosixFilePermissions.fromString("rwx------");
  private static final ObjectMapper JSON = ControlJson.MAPPER;

  /**
   * The persisted preferences; {@code wantRunning} is false after `trellis down`; {@code acceptDns}
   * false after `trellis up --accept-dns=false` (null, as in older files: names are accepted);
   * {@code multicast} true after `trellis up --multicast`.
   */
  public record Saved(
      String loginServer,
      String hostname,
      boolean loggedIn,
      boolean wantRunning,
      Boolean acceptDns,
      Boolean multicast) {
    public static final Saved EMPTY = new Saved(null, null, false, false, null, null);

    public Saved(String loginServer, String hostname, boolean loggedIn, boolean wantRunning) {
      this(loginServer, hostname, loggedIn, wantRunning, null, null);
    }

    /** Whether this node takes part in multicast (off unless `trellis up --multicast`). */
    public boolean multicastMember() {
      return Boolean.TRUE.equals(multicast);
    }

    /** Whether this host's resolver is to be pointed at the node's (the default). */
    public boolean acceptsDns() {
      return !Boolean.FALSE.equals(acceptDns);
    }

    /** The same with another login state; the other preferences kept. */
    public Saved with(String loginServer, String hostname, boolean loggedIn, boolean wantRunning) {
      return new Saved(loginServer, hostname, loggedIn, wantRunning, acceptDns, multicast);
    }

    /** The same with the preferences that are not null changed. */
    public Saved withPreferences(Boolean acceptDns, Boolean multicast) {
      return new Saved(
          loginServer,
          hostname,
          loggedIn,
          wantRunning,
          acceptDns != null ? acceptDns : this.acceptDns,
          multicast != null ? multicast : this.multicast);
    }
  }

  private final Path directory;
  private final byte[] machinePrivateKey;
  private volatile byte[] nodePrivateKey;
  private volatile Saved saved;

  private AgentState(Path directory, byte[] machinePrivateKey, byte[] nodePrivateKey, Saved saved) {
    this.directory = directory;
    this.machinePrivateKey = machinePrivateKey;
    this.nodePrivateKey = nodePrivateKey;
    this.saved = saved;
  }

  /** {@code explicit} if given, else $TRELLIS_STATE_DIR, else /var/lib/trellis. */
  public static Path resolveDirectory(Path explicit) {
    if (explicit != null) {
      return explicit;
    }
    String env = System.getenv(DIRECTORY_VARIABLE);
    return env == null || env.isBlank() ? DEFAULT_DIRECTORY : Path.of(env);
  }

  public static Path socketPath(Path directory) {
    return directory.resolve(SOCKET_NAME);
  }

  /** Held by the running agent from its start to its exit: one agent per state directory. */
  public static Path lockPath(Path directory) {
    return directory.resolve(LOCK_NAME);
  }

  /**
   * Takes the state directory's lock for this process's lifetime.
   *
   * @return false when another live process holds it (another agent runs on this directory)
   */
  public static boolean lock(Path directory) throws IOException {
    LockFile lock = LockFile.tryAcquire(lockPath(directory));
    if (lock == null) {
      return false;
    }
    HELD_LOCKS.add(lock); // released by the OS when the process ends, however it ends
    return true;
  }

  /** Whether an agent process holds this directory's lock (it may still be starting). */
  public static boolean agentAlive(Path directory) {
    return LockFile.held(lockPath(directory));
  }

  /** Opens (creating if needed) the state directory, its keys and state.json. */
  public static AgentState open(Path directory) throws IOException {
    Path dir = directory.toAbsolutePath();
    Files.createDirectories(dir);
    Set<PosixFilePermission> mode = Files.getPosixFilePermissions(dir);
    if (mode.contains(PosixFilePermission.OTHERS_WRITE)) {
      // Never chmod a shared directory such as /tmp: the state needs a dedicated one.
      throw new IOException(
          "state directory "
              + dir
              + " is writable by everyone; use a dedicated directory (--state-dir)");
    }
    Files.setPosixFilePermissions(dir, DIRECTORY_MODE);
    byte[] machine = loadOrCreateKey(dir.resolve("machine.key"));
    byte[] node = loadOrCreateKey(dir.resolve("node.key"));
    return new AgentState(dir, machine, node, loadSaved(dir.resolve("state.json")));
  }

  public Path directory() {
    return directory;
  }

  public Path socketPath() {
    return socketPath(directory);
  }

  public byte[] machinePrivateKey() {
    return machinePrivateKey.clone();
  }

  public byte[] nodePrivateKey() {
    return nodePrivateKey.clone();
  }

  public byte[] nodePublicKey() {
    return Curve25519.publicKey(nodePrivateKey);
  }

  public String nodePublicKeyBase64() {
    return Base64.getEncoder().encodeToString(nodePublicKey());
  }

  public Saved saved() {
    return saved;
  }

  public synchronized void save(Saved next) throws IOException {
    writePrivately(
        directory.resolve("state.json"),
        JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(next));
    saved = next;
  }

  /** A fresh node key, written before it is used so a crash cannot lose it. */
  public synchronized byte[] rotateNodeKey() throws IOException {
    byte[] key = Curve25519.generatePrivateKey();
    writePrivately(
        directory.resolve("node.key"),
        (Base64.getEncoder().encodeToString(key) + "\n").getBytes(StandardCharsets.US_ASCII));
    nodePrivateKey = key;
    return key.clone();
  }

  private static byte[] loadOrCreateKey(Path file) throws IOException {
    String text;
    try {
      text = Files.readString(file, StandardCharsets.US_ASCII).strip();
    } catch (NoSuchFileException e) {
      byte[] key = Curve25519.generatePrivateKey();
      writePrivately(
          file,
          (Base64.getEncoder().encodeToString(key) + "\n").getBytes(StandardCharsets.US_ASCII));
      return key;
    }
    byte[] key;
    try {
      key = Base64.getDecoder().decode(text);
    } catch (IllegalArgumentException e) {
      key = new byte[0];
    }
    if (key.length != Curve25519.KEY_LENGTH) {
      // Regenerating would silently change the node's identity: make a person decide.
      throw new IOException(
          file + " does not hold a base64 32-byte key; move it away to generate a new one");
    }
    Files.setPosixFilePermissions(file, FILE_MODE);
    return key;
  }

  private static Saved loadSaved(Path file) throws IOException {
    if (!Files.exists(file)) {
      return Saved.EMPTY;
    }
    try {
      Saved s = JSON.readValue(file.toFile(), Saved.class);
      return s == null ? Saved.EMPTY : s;
    } catch (IOException e) {
      throw new IOException("cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  /** Writes through a 0600 temporary file and renames it, so readers never see half a file. */
  static void writePrivately(Path file, byte[] content) throws IOException {
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    Files.deleteIfExists(tmp);
    Files.createFile(tmp, PosixFilePermissions.asFileAttribute(FILE_MODE));
    Files.setPosixFilePermissions(tmp, FILE_MODE); // the umask may have narrowed it; never widened
    Files.write(tmp, content);
    try {
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
    }
    Files.setPosixFilePermissions(file, FILE_MODE);
  }
}
