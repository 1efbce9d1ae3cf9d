package dev.trellis.dataplane.linux;

import static dev.trellis.dataplane.linux.LinuxSyscalls.*;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A non-blocking file descriptor shared by threads, with an eventfd that {@link #close} signals so
 * a thread waiting in {@link #await} wakes at once. Calls are counted ({@link #acquire}/{@link
 * #release}); the actual {@code close(2)} happens only once no call is using the fd, so a racing
 * caller can never hit a recycled fd number.
 */
public final class GuardedFd {
  /** High bit of {@link #state}: close() was requested. Low bits: calls in flight. */
  private static final int CLOSED = 0x8000_0000;

  private static final int COUNT_MASK = 0x7fff_ffff;

  private final int fd;
  private final int wakeFd;
  private final AtomicInteger state = new AtomicInteger();
  private final CountDownLatch fdsClosed = new CountDownLatch(1);

  private GuardedFd(int fd, int wakeFd) {
    this.fd = fd;
    this.wakeFd = wakeFd;
  }

  /** Guards {@code fd}; on failure to make the eventfd, closes {@code fd} and throws. */
  public static GuardedFd of(int fd) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment errno = newErrnoSegment(arena);
      int wake = eventfd(errno, 0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (wake < 0) {
        closeQuietly(fd);
        throw new IOException("eventfd() failed: " + describeErrno(errno(errno)));
      }
      return new GuardedFd(fd, wake);
    }
  }

  public int fd() {
    return fd;
  }

  /** Starts a call; false once closed (the call must not touch the fd). */
  public boolean acquire() {
    for (; ; ) {
      int s = state.get();
      if ((s & CLOSED) != 0) {
        return false;
      }
      if (state.compareAndSet(s, s + 1)) {
        return true;
      }
    }
  }

  /** Ends a call; the last one out after close() closes the fds. */
  public void release() {
    if (state.decrementAndGet() == CLOSED) {
      closeFds();
    }
  }

  public boolean closing() {
    return (state.get() & CLOSED) != 0;
  }

  /**
   * Waits in {@code poll(2)} until the fd is ready for {@code events} (or reports an error, which
   * the caller's retried syscall will tell) or close() is called.
   *
   * @param pollFds room for two {@code struct pollfd}
   * @return false once closing
   */
  public boolean await(MemorySegment errno, MemorySegment pollFds, short events, String what)
      throws IOException {
    pollFds.set(ValueLayout.JAVA_INT, 0, fd);
    pollFds.set(ValueLayout.JAVA_SHORT, 4, events);
    pollFds.set(ValueLayout.JAVA_SHORT, 6, (short) 0);
    pollFds.set(ValueLayout.JAVA_INT, 8, wakeFd);
    pollFds.set(ValueLayout.JAVA_SHORT, 12, POLLIN);
    pollFds.set(ValueLayout.JAVA_SHORT, 14, (short) 0);
    int r;
    try {
      r = (int) POLL.invokeExact(errno, pollFds, 2L, -1);
    } catch (Throwable t) {
      throw rethrow(t);
    }
    if (r < 0) {
      int e = errno(errno);
      if (e == EINTR || e == EAGAIN) {
        return !closing();
      }
      throw new IOException("poll on " + what + " failed: " + describeErrno(e));
    }
    return pollFds.get(ValueLayout.JAVA_SHORT, 14) == 0 && !closing();
  }

  /**
   * Marks the fd closed, wakes waiters, and closes the fds when no call is in flight; waits up to 5
   * s for in-flight calls to drain. Idempotent.
   */
  public void close() {
    int s;
    do {
      s = state.get();
      if ((s & CLOSED) != 0) {
        awaitFdsClosed();
        return;
      }
    } while (!state.compareAndSet(s, s | CLOSED));
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment one = arena.allocateFrom(ValueLayout.JAVA_LONG, 1L);
      // Failure is only possible on counter overflow, which cannot happen with one write.
      write(newErrnoSegment(arena), wakeFd, one, 8L);
    }
    if ((s & COUNT_MASK) == 0) {
      closeFds();
    } else {
      awaitFdsClosed();
    }
  }

  private void closeFds() {
    closeQuietly(fd);
    closeQuietly(wakeFd);
    fdsClosed.countDown();
  }

  private void awaitFdsClosed() {
    boolean interrupted = false;
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
    try {
      for (; ; ) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          return; // the last in-flight call will close the fds when it returns
        }
        try {
          if (fdsClosed.await(left, TimeUnit.NANOSECONDS)) {
            return;
          }
        } catch (InterruptedException ie) {
          interrupted = true;
        }
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
