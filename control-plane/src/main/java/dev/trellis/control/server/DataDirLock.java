package dev.trellis.control.server;

import dev.trellis.dataplane.lock.LockFile;
import java.io.IOException;
import java.nio.file.Path;

/**
 * One server per data directory: a {@link LockFile} on {@code DIR/server.lock}, held from start to
 * close. A second server on the same directory stops at once with one line, instead of waiting
 * forever for the LevelDB journal's own lock.
 */
public final class DataDirLock implements AutoCloseable {
  static final String FILE = "server.lock";

  private final LockFile lock;

  private DataDirLock(LockFile lock) {
    this.lock = lock;
  }

  /** Takes the lock, or fails with a message that says which directory is in use. */
  static DataDirLock acquire(Path dataDir) throws IOException {
    LockFile lock = LockFile.tryAcquire(dataDir.resolve(FILE));
    if (lock == null) {
      throw new IOException(
          "data directory "
              + dataDir
              + " is in use by another trellis server; stop it first, or give this one its own"
              + " --data-dir");
    }
    return new DataDirLock(lock);
  }

  /** Whether a live server (perhaps still starting) holds {@code dataDir}'s lock. */
  public static boolean heldByAServer(Path dataDir) {
    return LockFile.held(dataDir.resolve(FILE));
  }

  @Override
  public void close() {
    lock.close();
  }
}
