package dev.trellis.dataplane.tun;

import static dev.trellis.dataplane.tun.LinuxSyscalls.*;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A Linux TUN interface ({@code IFF_TUN | IFF_NO_PI}) driven through the Foreign Function &amp;
 * Memory API.
 *
 * <p>The TUN file descriptor is non-blocking. A blocking {@link #read} waits in {@code poll(2)} on
 * the TUN fd together with an {@code eventfd(2)} that {@link #close()} signals, so closing wakes a
 * blocked reader immediately. The file descriptors are reference counted by in-flight calls: the
 * actual {@code close(2)} happens only once no read/write is using them, so a racing writer can
 * never hit a recycled fd number.
 *
 * <p>One thread may read while any number of threads write; each {@link #write} is one {@code
 * write(2)} syscall. The hot paths do not allocate beyond what escape analysis removes (a {@link
 * MemorySegment} view of the caller's direct buffer); per-thread native scratch (errno capture
 * state, {@code struct pollfd}) is cached in a {@link ThreadLocal}.
 */
public final class TunDevice implements PacketTunnel {

  public static final int DEFAULT_MTU = 1420;

  private static final String TUN_PATH = "/dev/net/tun";

  /**
   * High bit of {@link #state}: close() has been requested. Low bits: number of in-flight calls.
   */
  private static final int CLOSED = 0x8000_0000;

  private static final int COUNT_MASK = 0x7fff_ffff;

  private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

  private final int fd;
  private final int wakeFd;
  private final String name;
  private final int mtu;
  private final AtomicInteger state = new AtomicInteger();
  private final CountDownLatch fdsClosed = new CountDownLatch(1);

  private TunDevice(int fd, int wakeFd, String name, int mtu) {
    this.fd = fd;
    this.wakeFd = wakeFd;
    this.name = name;
    this.mtu = mtu;
  }

  /**
   * Creates (or attaches to) TUN interface {@code name} with {@code IFF_TUN|IFF_NO_PI} and sets its
   * MTU. Does not bring the link up. An empty name lets the kernel choose ({@code tunN}).
   *
   * @throws IOException with the errno name/number and a hint on failure (no permission, name too
   *     long, device busy, ...)
   */
  public static TunDevice open(String name, int mtu) throws IOException {
    if (name == null) {
      throw new NullPointerException("name");
    }
    if (mtu <= 0) {
      throw new IllegalArgumentException("MTU must be positive: " + mtu);
    }
    byte[] nameBytes = name.getBytes(StandardCharsets.UTF_8);
    if (nameBytes.length > IFNAMSIZ - 1) {
      throw new IOException(
          "TUN interface name '"
              + name
              + "' is too long: "
              + nameBytes.length
              + " bytes, Linux allows at most "
              + (IFNAMSIZ - 1)
              + " (IFNAMSIZ-1)");
    }
    if (name.indexOf('\0') >= 0) {
      throw new IOException(
          "TUN interface name must not contain NUL characters: '"
              + name.replace("\0", "\\0")
              + "'");
    }

    try (Arena arena = Arena.ofConfined()) {
      MemorySegment errno = newErrnoSegment(arena);

      int tunFd = LinuxSyscalls.open(errno, TUN_PATH, O_RDWR | O_CLOEXEC | O_NONBLOCK);
      if (tunFd < 0) {
        int e = errno(errno);
        String hint =
            switch (e) {
              case ENOENT, ENODEV, ENXIO -> " (is the 'tun' kernel module available?)";
              case EACCES, EPERM -> " (needs root or CAP_NET_ADMIN and access to " + TUN_PATH + ")";
              default -> "";
            };
        throw new IOException("cannot open " + TUN_PATH + ": " + describeErrno(e) + hint);
      }

      int sock = -1;
      int evFd = -1;
      boolean ok = false;
      try {
        MemorySegment ifr = arena.allocate(IFREQ_SIZE, 8);
        MemorySegment.copy(nameBytes, 0, ifr, ValueLayout.JAVA_BYTE, 0, nameBytes.length);
        ifr.set(ValueLayout.JAVA_SHORT, IFREQ_UNION_OFFSET, (short) (IFF_TUN | IFF_NO_PI));
        if (ioctl(errno, tunFd, TUNSETIFF, ifr) < 0) {
          int e = errno(errno);
          String hint =
              switch (e) {
                case EPERM, EACCES -> " (needs CAP_NET_ADMIN)";
                case EBUSY -> " (interface is already attached to another file descriptor)";
                case EINVAL ->
                    " (invalid interface name, or an existing interface of that name"
                        + " is not a TUN device with matching flags)";
                case EEXIST -> " (a non-TUN interface with that name exists)";
                default -> "";
              };
          throw new IOException(
              "ioctl(TUNSETIFF) for TUN interface '"
                  + name
                  + "' failed: "
                  + describeErrno(e)
                  + hint);
        }
        String actualName = ifr.getString(0, StandardCharsets.UTF_8);

        sock = socket(errno, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sock < 0) {
          throw new IOException(
              "cannot create AF_INET socket to set the MTU of '"
                  + actualName
                  + "': "
                  + describeErrno(errno(errno)));
        }
        MemorySegment mtuReq = arena.allocate(IFREQ_SIZE, 8);
        byte[] actualBytes = actualName.getBytes(StandardCharsets.UTF_8);
        MemorySegment.copy(
            actualBytes,
            0,
            mtuReq,
            ValueLayout.JAVA_BYTE,
            0,
            Math.min(actualBytes.length, IFNAMSIZ - 1));
        mtuReq.set(ValueLayout.JAVA_INT, IFREQ_UNION_OFFSET, mtu);
        if (ioctl(errno, sock, SIOCSIFMTU, mtuReq) < 0) {
          int e = errno(errno);
          String hint = e == EINVAL ? " (MTU out of range for a TUN device, 68..65535)" : "";
          throw new IOException(
              "ioctl(SIOCSIFMTU, "
                  + mtu
                  + ") on '"
                  + actualName
                  + "' failed: "
                  + describeErrno(e)
                  + hint);
        }

        evFd = eventfd(errno, 0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (evFd < 0) {
          throw new IOException("eventfd() failed: " + describeErrno(errno(errno)));
        }
        ok = true;
        return new TunDevice(tunFd, evFd, actualName, mtu);
      } finally {
        closeQuietly(sock);
        if (!ok) {
          closeQuietly(evFd);
          closeQuietly(tunFd);
        }
      }
    }
  }

  /** The interface name as reported by the kernel. */
  public String name() {
    return name;
  }

  public int mtu() {
    return mtu;
  }

  /**
   * Reads one IP packet into {@code dst} at its position and advances the position. Blocks until a
   * packet arrives. {@code dst} should be a direct buffer with at least {@link #mtu()} bytes
   * remaining (heap buffers work via a per-thread copy). A packet longer than the remaining space
   * is silently truncated by the kernel.
   *
   * @return the packet length, or -1 once the device is closed or the interface was deleted
   */
  public int read(ByteBuffer dst) throws IOException {
    if (dst.isReadOnly()) {
      throw new ReadOnlyBufferException();
    }
    if (!dst.hasRemaining()) {
      throw new IllegalArgumentException("no space remaining in destination buffer");
    }
    if (!acquire()) {
      return -1;
    }
    try {
      Scratch s = SCRATCH.get();
      if (dst.isDirect()) {
        return readDirect(dst, s);
      }
      ByteBuffer tmp = s.bounce(dst.remaining());
      int n = readDirect(tmp, s);
      if (n > 0) {
        tmp.flip();
        dst.put(tmp);
      }
      return n;
    } finally {
      release();
    }
  }

  private int readDirect(ByteBuffer dst, Scratch s) throws IOException {
    int pos = dst.position();
    long len = dst.limit() - pos;
    MemorySegment buf = MemorySegment.ofBuffer(dst);
    MemorySegment errno = s.errno;
    for (; ; ) {
      long n;
      try {
        n = (long) READ.invokeExact(errno, fd, buf, len);
      } catch (Throwable t) {
        throw rethrow(t);
      }
      if (n >= 0) {
        dst.position(pos + (int) n);
        return (int) n;
      }
      int e = errno(errno);
      if (e == EAGAIN) {
        if (!await(s, POLLIN)) {
          return -1;
        }
      } else if (e == EINTR) {
        // retry
      } else if (isGone(e)) {
        return -1;
      } else if (e == EFAULT || e == EINVAL) {
        throw new IOException(
            "read from TUN '"
                + name
                + "' failed: "
                + describeErrno(e)
                + " (destination has "
                + len
                + " bytes remaining; packet may be larger)");
      } else {
        throw new IOException("read from TUN '" + name + "' failed: " + describeErrno(e));
      }
    }
  }

  /**
   * Writes {@code src}'s remaining bytes as one packet and advances its position.
   *
   * @return true if the packet was handed to the kernel; false if the device is closed or gone
   *     (kernel EBADFD after {@code ip link del}), and also when the kernel refuses the packet with
   *     EIO because the link is administratively down (the packet is dropped)
   * @throws IOException on any other error (e.g. EINVAL for something that is not an IP packet)
   */
  public boolean write(ByteBuffer src) throws IOException {
    if (!acquire()) {
      return false;
    }
    try {
      Scratch s = SCRATCH.get();
      if (src.isDirect()) {
        return writeDirect(src, s);
      }
      int pos = src.position();
      ByteBuffer tmp = s.bounce(src.remaining());
      tmp.put(src.duplicate()).flip();
      boolean ok = writeDirect(tmp, s);
      if (ok) {
        src.position(pos + tmp.position());
      }
      return ok;
    } finally {
      release();
    }
  }

  private boolean writeDirect(ByteBuffer src, Scratch s) throws IOException {
    int pos = src.position();
    long len = src.limit() - pos;
    MemorySegment buf = MemorySegment.ofBuffer(src);
    MemorySegment errno = s.errno;
    for (; ; ) {
      long n;
      try {
        n = (long) WRITE.invokeExact(errno, fd, buf, len);
      } catch (Throwable t) {
        throw rethrow(t);
      }
      if (n >= 0) {
        src.position(pos + (int) n);
        return true;
      }
      int e = errno(errno);
      if (e == EAGAIN) {
        if (!await(s, POLLOUT)) {
          return false;
        }
      } else if (e == EINTR) {
        // retry
      } else if (isGone(e)) {
        return false;
      } else {
        throw new IOException(
            "write of " + len + " bytes to TUN '" + name + "' failed: " + describeErrno(e));
      }
    }
  }

  /**
   * Waits until the TUN fd is ready for {@code events} or the device is closed.
   *
   * @return false if the device has been closed
   */
  private boolean await(Scratch s, short events) throws IOException {
    MemorySegment pfd = s.pollFds;
    pfd.set(ValueLayout.JAVA_INT, 0, fd);
    pfd.set(ValueLayout.JAVA_SHORT, 4, events);
    pfd.set(ValueLayout.JAVA_SHORT, 6, (short) 0);
    pfd.set(ValueLayout.JAVA_INT, 8, wakeFd);
    pfd.set(ValueLayout.JAVA_SHORT, 12, POLLIN);
    pfd.set(ValueLayout.JAVA_SHORT, 14, (short) 0);
    int r;
    try {
      r = (int) POLL.invokeExact(s.errno, pfd, 2L, -1);
    } catch (Throwable t) {
      throw rethrow(t);
    }
    if (r < 0) {
      int e = errno(s.errno);
      if (e == EINTR || e == EAGAIN) {
        return (state.get() & CLOSED) == 0;
      }
      throw new IOException("poll on TUN '" + name + "' failed: " + describeErrno(e));
    }
    if (pfd.get(ValueLayout.JAVA_SHORT, 14) != 0 || (state.get() & CLOSED) != 0) {
      return false;
    }
    // Readiness, POLLERR or POLLHUP on the TUN fd: retry the syscall, which reports the real state
    // (a detached TUN fd fails with EBADFD).
    return true;
  }

  private static boolean isGone(int e) {
    return e == EBADFD || e == EIO || e == ENXIO || e == ENODEV || e == EBADF;
  }

  /** Closes the device and wakes a blocked reader (which then returns -1). Idempotent. */
  @Override
  public void close() {
    int s;
    do {
      s = state.get();
      if ((s & CLOSED) != 0) {
        awaitFdsClosed();
        return;
      }
    } while (!state.compareAndSet(s, s | CLOSED));
    signalWake();
    if ((s & COUNT_MASK) == 0) {
      closeFds();
    } else {
      awaitFdsClosed();
    }
  }

  private boolean acquire() {
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

  private void release() {
    if (state.decrementAndGet() == CLOSED) {
      // close() was requested while we were in flight and we are the last user
      closeFds();
    }
  }

  private void signalWake() {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment one = arena.allocate(ValueLayout.JAVA_LONG);
      one.set(ValueLayout.JAVA_LONG, 0, 1L);
      // Failure is only possible on counter overflow, which cannot happen with one write.
      LinuxSyscalls.write(newErrnoSegment(arena), wakeFd, one, 8L);
    }
  }

  private void closeFds() {
    closeQuietly(fd);
    closeQuietly(wakeFd);
    fdsClosed.countDown();
  }

  /** Waits (boundedly) for in-flight calls, which close() has woken, to drain and close the fds. */
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

  @Override
  public String toString() {
    return "TunDevice[" + name + ", mtu=" + mtu + ((state.get() & CLOSED) != 0 ? ", closed]" : "]");
  }

  /** Per-thread native scratch memory, freed by the GC when the thread's entry goes away. */
  private static final class Scratch {
    final MemorySegment errno;
    final MemorySegment pollFds;
    ByteBuffer bounce;

    Scratch() {
      Arena arena = Arena.ofAuto();
      errno = newErrnoSegment(arena);
      pollFds = arena.allocate(2L * POLLFD_SIZE, 8);
    }

    /** A cleared direct buffer with at least {@code size} bytes, limited to {@code size}. */
    ByteBuffer bounce(int size) {
      ByteBuffer b = bounce;
      if (b == null || b.capacity() < size) {
        b = ByteBuffer.allocateDirect(Math.max(size, 65536));
        bounce = b;
      }
      b.clear().limit(size);
      return b;
    }
  }
}
