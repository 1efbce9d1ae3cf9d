package dev.trellis.control.server;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * One server per data directory: a lock on {@code DIR/server.lock}, held from start to close. A
 * second server on the same directory stops at once with one line, instead of waiting forever for
 * the LevelDB journal's own lock. The operating system drops the lock when the process ends,
 * however it ends, so a crash leaves nothing to clean up.
 */
public final class DataDirLock implements AutoCloseable {
  static final String FILE = "server.lock";

  private final FileChannel channel;
  private final FileLock lock;

  private DataDirLock(FileChannel channel, FileLock lock) {
    this.channel = channel;
    this.lock = lock;
  }

  /** Takes the lock, or fails with a message that says which directory is in use. */
  static DataDirLock acquire(Path dataDir) throws IOException {
    FileChannel channel =
        FileChannel.open(
            dataDir.resolve(FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
    FileLock lock;
    try {
      lock = channel.tryLock();
    } catch (OverlappingFileLockException e) {
      lock = null; // held by another server in this same JVM
    }
    if (lock == null) {
      channel.close();
      throw new IOException(
          "data directory "
              + dataDir
              + " is in use by another trellis server; stop it first, or give this one its own"
              + " --data-dir");
    }
    return new DataDirLock(channel, lock);
  }

  /** Whether a live server (perhaps still starting) holds {@code dataDir}'s lock. */
  public static boolean heldByAServer(Path dataDir) {
    Path file = dataDir.resolve(FILE);
    if (!Files.exists(file)) {
      return false;
    }
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
      FileLock probe = channel.tryLock();
      if (probe == null) {
        return true;
      }
      probe.release();
      return false;
    } catch (IOException | OverlappingFileLockException e) {
      return e instanceof OverlappingFileLockException; // held in this JVM
    }
  }

  @Override
  public void close() {
    try {
      lock.release();
      channel.close();
    } catch (IOException ignored) {
      // the channel is gone with the lock
    }
  }
}
