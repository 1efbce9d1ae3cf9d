package dev.trellis.dataplane.tun;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;

/**
 * Thin FFM bindings to the handful of Linux libc calls needed by {@link TunDevice}.
 *
 * <p>Every errno-setting call is bound with {@code Linker.Option.captureCallState("errno")}, so its
 * handle takes a leading capture-state segment (see {@link #newErrnoSegment}) and the errno value
 * is read back with {@link #errno(MemorySegment)}. All handles are static finals so the JIT can
 * treat them as constants on the packet hot path.
 *
 * <p>Constants are the Linux values shared by x86_64 and aarch64.
 */
final class LinuxSyscalls {

  private LinuxSyscalls() {}

  // fcntl.h / eventfd.h / socket.h
  static final int O_RDWR = 0x2;
  static final int O_NONBLOCK = 0x800;
  static final int O_CLOEXEC = 0x80000;
  static final int EFD_NONBLOCK = O_NONBLOCK;
  static final int EFD_CLOEXEC = O_CLOEXEC;
  static final int AF_INET = 2;
  static final int SOCK_DGRAM = 2;
  static final int SOCK_CLOEXEC = O_CLOEXEC;

  // poll.h
  static final short POLLIN = 0x001;
  static final short POLLOUT = 0x004;
  static final short POLLERR = 0x008;
  static final short POLLHUP = 0x010;
  static final short POLLNVAL = 0x020;

  // ioctls
  static final long TUNSETIFF = 0x400454caL;
  static final long SIOCSIFMTU = 0x8922L;
  static final short IFF_TUN = 0x0001;
  static final short IFF_NO_PI = 0x1000;
  static final int IFNAMSIZ = 16;
  static final int IFREQ_SIZE = 40;
  static final int IFREQ_UNION_OFFSET = 16;

  // errno values (asm-generic)
  static final int EPERM = 1;
  static final int ENOENT = 2;
  static final int EINTR = 4;
  static final int EIO = 5;
  static final int ENXIO = 6;
  static final int EBADF = 9;
  static final int EAGAIN = 11;
  static final int ENOMEM = 12;
  static final int EACCES = 13;
  static final int EFAULT = 14;
  static final int EBUSY = 16;
  static final int EEXIST = 17;
  static final int ENODEV = 19;
  static final int EINVAL = 22;
  static final int ENFILE = 23;
  static final int EMFILE = 24;
  static final int ENOTTY = 25;
  static final int ENOSPC = 28;
  static final int ERANGE = 34;
  static final int ENAMETOOLONG = 36;
  static final int EBADFD = 77;
  static final int EMSGSIZE = 90;
  static final int EOPNOTSUPP = 95;
  static final int EADDRNOTAVAIL = 99;
  static final int ENETDOWN = 100;
  static final int ENOBUFS = 105;

  /** sizeof(struct pollfd) */
  static final int POLLFD_SIZE = 8;

  private static final Linker LINKER = Linker.nativeLinker();
  private static final SymbolLookup LIBC = LINKER.defaultLookup();
  private static final MemoryLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
  private static final VarHandle ERRNO_HANDLE =
      CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
  private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");

  /** int open(const char *path, int flags, ...) */
  static final MethodHandle OPEN =
      downcall(
          "open",
          FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
          CAPTURE_ERRNO,
          Linker.Option.firstVariadicArg(2));

  /** int close(int fd) */
  static final MethodHandle CLOSE =
      downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT), CAPTURE_ERRNO);

  /** ssize_t read(int fd, void *buf, size_t count) */
  static final MethodHandle READ =
      downcall(
          "read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), CAPTURE_ERRNO);

  /** ssize_t write(int fd, const void *buf, size_t count) */
  static final MethodHandle WRITE =
      downcall(
          "write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), CAPTURE_ERRNO);

  /** int ioctl(int fd, unsigned long request, void *arg) (variadic third argument) */
  static final MethodHandle IOCTL =
      downcall(
          "ioctl",
          FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS),
          CAPTURE_ERRNO,
          Linker.Option.firstVariadicArg(2));

  /** int socket(int domain, int type, int protocol) */
  static final MethodHandle SOCKET =
      downcall(
          "socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), CAPTURE_ERRNO);

  /** int eventfd(unsigned int initval, int flags) */
  static final MethodHandle EVENTFD =
      downcall("eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), CAPTURE_ERRNO);

  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout) */
  static final MethodHandle POLL =
      downcall(
          "poll", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT), CAPTURE_ERRNO);

  /** char *strerror(int errnum) -- only used on error paths. */
  private static final MethodHandle STRERROR =
      downcall("strerror", FunctionDescriptor.of(ADDRESS, JAVA_INT));

  private static MethodHandle downcall(
      String name, FunctionDescriptor fd, Linker.Option... options) {
    MemorySegment symbol =
        LIBC.find(name)
            .orElseThrow(() -> new UnsatisfiedLinkError("libc symbol not found: " + name));
    return LINKER.downcallHandle(symbol, fd, options);
  }

  /** Allocates a capture-state segment suitable as the leading argument of the handles above. */
  static MemorySegment newErrnoSegment(Arena arena) {
    return arena.allocate(CAPTURE_LAYOUT);
  }

  static int errno(MemorySegment captureState) {
    return (int) ERRNO_HANDLE.get(captureState, 0L);
  }

  // ---------------------------------------------------------------- convenience (cold paths)

  static int open(MemorySegment errno, String path, int flags) {
    try (Arena arena = Arena.ofConfined()) {
      return (int) OPEN.invokeExact(errno, arena.allocateFrom(path), flags, 0);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static int close(MemorySegment errno, int fd) {
    try {
      return (int) CLOSE.invokeExact(errno, fd);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static int ioctl(MemorySegment errno, int fd, long request, MemorySegment arg) {
    try {
      return (int) IOCTL.invokeExact(errno, fd, request, arg);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static int socket(MemorySegment errno, int domain, int type, int protocol) {
    try {
      return (int) SOCKET.invokeExact(errno, domain, type, protocol);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static int eventfd(MemorySegment errno, int initval, int flags) {
    try {
      return (int) EVENTFD.invokeExact(errno, initval, flags);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  static long write(MemorySegment errno, int fd, MemorySegment buf, long count) {
    try {
      return (long) WRITE.invokeExact(errno, fd, buf, count);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  /** Closes {@code fd}, ignoring errors (Linux closes the fd even when close returns EINTR). */
  static void closeQuietly(int fd) {
    if (fd < 0) {
      return;
    }
    try (Arena arena = Arena.ofConfined()) {
      close(newErrnoSegment(arena), fd);
    }
  }

  /** "ENODEV (19): No such device" */
  static String describeErrno(int errno) {
    String name = errnoName(errno);
    String text;
    try {
      MemorySegment p = (MemorySegment) STRERROR.invokeExact(errno);
      text =
          p.equals(MemorySegment.NULL)
              ? null
              : p.reinterpret(256).getString(0, StandardCharsets.UTF_8);
    } catch (Throwable t) {
      text = null;
    }
    StringBuilder sb = new StringBuilder();
    sb.append(name != null ? name : "errno").append(" (").append(errno).append(')');
    if (text != null && !text.isEmpty()) {
      sb.append(": ").append(text);
    }
    return sb.toString();
  }

  static String errnoName(int errno) {
    return switch (errno) {
      case EPERM -> "EPERM";
      case ENOENT -> "ENOENT";
      case EINTR -> "EINTR";
      case EIO -> "EIO";
      case ENXIO -> "ENXIO";
      case EBADF -> "EBADF";
      case EAGAIN -> "EAGAIN";
      case ENOMEM -> "ENOMEM";
      case EACCES -> "EACCES";
      case EFAULT -> "EFAULT";
      case EBUSY -> "EBUSY";
      case EEXIST -> "EEXIST";
      case ENODEV -> "ENODEV";
      case EINVAL -> "EINVAL";
      case ENFILE -> "ENFILE";
      case EMFILE -> "EMFILE";
      case ENOTTY -> "ENOTTY";
      case ENOSPC -> "ENOSPC";
      case ERANGE -> "ERANGE";
      case ENAMETOOLONG -> "ENAMETOOLONG";
      case EBADFD -> "EBADFD";
      case EMSGSIZE -> "EMSGSIZE";
      case EOPNOTSUPP -> "EOPNOTSUPP";
      case EADDRNOTAVAIL -> "EADDRNOTAVAIL";
      case ENETDOWN -> "ENETDOWN";
      case ENOBUFS -> "ENOBUFS";
      default -> null;
    };
  }

  static RuntimeException rethrow(Throwable t) {
    if (t instanceof RuntimeException re) {
      throw re;
    }
    if (t instanceof Error e) {
      throw e;
    }
    throw new IllegalStateException("unexpected exception from native call", t);
  }
}
