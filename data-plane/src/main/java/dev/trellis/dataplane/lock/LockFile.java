package dev.trellis.dataplane.lock;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A lock on a file that one process holds for as long as it runs: one agent per state directory,
 * one server per data directory. The operating system drops it when the process ends, however it
 * ends, so a crash leaves nothing to clean up; others can tell a live holder from a stale file.
 * Thread-safe; a lock is released once.
 */
public final class LockFile implements AutoCloseable {
  private final FileChannel channel;
  private final FileLock lock;

  private LockFile(FileChannel channel, FileLock lock) {
    this.channel = channel;
    this.lock = lock;
  }

  /** Takes the lock on {@code file} (created if missing), or null when someone else holds it. */
  public static LockFile tryAcquire(Path file) throws IOException {
    FileChannel channel =
        FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
    FileLock lock;
    try {
      lock = channel.tryLock();
    } catch (OverlappingFileLockException e) {
      lock = null; // held in this same JVM
    }
    if (lock == null) {
      channel.close();
      return null;
    }
    return new LockFile(channel, lock);
  }

  /** Whether a live process (perhaps this one) holds the lock on {@code file}. */
  public static boolean held(Path file) {
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
    } catch (OverlappingFileLockException e) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  @Override
  public synchronized void close() {
    try {
      if (lock.isValid()) {
        lock.release();
      }
      channel.close();
    } catch (IOException ignored) {
      // the channel goes with the lock
    }
  }
}
