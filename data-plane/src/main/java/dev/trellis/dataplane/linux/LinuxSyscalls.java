package dev.trellis.dataplane.linux;

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
 * Thin FFM bindings to the handful of Linux libc calls needed by the TUN device and the UDP socket.
 *
 * <p>Every errno-setting call is bound with {@code Linker.Option.captureCallState("errno")}, so its
 * handle takes a leading capture-state segment (see {@link #newErrnoSegment}) and the errno value
 * is read back with {@link #errno(MemorySegment)}. All handles are static finals so the JIT can
 * treat them as constants on the packet hot path.
 *
 * <p>Constants are the Linux values shared by x86_64 and aarch64.
 */
public final class LinuxSyscalls {

  private LinuxSyscalls() {}

  // fcntl.h / eventfd.h / socket.h
  public static final int O_RDWR = 0x2;
  public static final int O_NONBLOCK = 0x800;
  public static final int O_CLOEXEC = 0x80000;
  public static final int EFD_NONBLOCK = O_NONBLOCK;
  public static final int EFD_CLOEXEC = O_CLOEXEC;
  public static final int AF_INET = 2;
  public static final int SOCK_DGRAM = 2;
  public static final int SOCK_CLOEXEC = O_CLOEXEC;
  public static final int SOCK_NONBLOCK = O_NONBLOCK;
  public static final int AF_INET6 = 10;
  public static final int SOL_SOCKET = 1;
  public static final int SO_SNDBUF = 7;
  public static final int SO_RCVBUF = 8;
  public static final int SO_SNDBUFFORCE = 32;
  public static final int SO_RCVBUFFORCE = 33;
  public static final int SO_MARK = 36;
  public static final int IPPROTO_IPV6 = 41;
  public static final int IPV6_V6ONLY = 26;
  public static final int SOL_UDP = 17;
  public static final int UDP_SEGMENT = 103;
  public static final int UDP_GRO = 104;

  // poll.h
  public static final short POLLIN = 0x001;
  public static final short POLLOUT = 0x004;
  public static final short POLLERR = 0x008;
  public static final short POLLHUP = 0x010;
  public static final short POLLNVAL = 0x020;

  // ioctls
  public static final long TUNSETIFF = 0x400454caL;
  public static final long SIOCSIFMTU = 0x8922L;
  public static final short IFF_TUN = 0x0001;
  public static final short IFF_NO_PI = 0x1000;
  public static final short IFF_VNET_HDR = 0x4000;
  public static final long TUNSETOFFLOAD = 0x400454d0L;
  public static final int TUN_F_CSUM = 0x01;
  public static final int TUN_F_TSO4 = 0x02;
  public static final int TUN_F_TSO6 = 0x04;
  public static final int TUN_F_USO4 = 0x20;
  public static final int TUN_F_USO6 = 0x40;
  public static final int IFNAMSIZ = 16;
  public static final int IFREQ_SIZE = 40;
  public static final int IFREQ_UNION_OFFSET = 16;

  // errno values (asm-generic)
  public static final int EPERM = 1;
  public static final int ENOENT = 2;
  public static final int EINTR = 4;
  public static final int EIO = 5;
  public static final int ENXIO = 6;
  public static final int EBADF = 9;
  public static final int EAGAIN = 11;
  public static final int ENOMEM = 12;
  public static final int EACCES = 13;
  public static final int EFAULT = 14;
  public static final int EBUSY = 16;
  public static final int EEXIST = 17;
  public static final int ENODEV = 19;
  public static final int EINVAL = 22;
  public static final int ENFILE = 23;
  public static final int EMFILE = 24;
  public static final int ENOTTY = 25;
  public static final int ENOSPC = 28;
  public static final int ERANGE = 34;
  public static final int ENAMETOOLONG = 36;
  public static final int EBADFD = 77;
  public static final int EMSGSIZE = 90;
  public static final int EOPNOTSUPP = 95;
  public static final int EADDRNOTAVAIL = 99;
  public static final int ENETDOWN = 100;
  public static final int EAFNOSUPPORT = 97;
  public static final int EADDRINUSE = 98;
  public static final int ENETUNREACH = 101;
  public static final int ENOBUFS = 105;
  public static final int ECONNREFUSED = 111;
  public static final int EHOSTUNREACH = 113;

  /** sizeof(struct pollfd) */
  public static final int POLLFD_SIZE = 8;

  private static final Linker LINKER = Linker.nativeLinker();
  private static final SymbolLookup LIBC = LINKER.defaultLookup();
  private static final MemoryLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
  private static final VarHandle ERRNO_HANDLE =
      CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
  private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");

  /** int open(const char *path, int flags, ...) */
  public static final MethodHandle OPEN =
      downcall(
          "open",
          FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
          CAPTURE_ERRNO,
          Linker.Option.firstVariadicArg(2));

  /** int close(int fd) */
  public static final MethodHandle CLOSE =
      downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT), CAPTURE_ERRNO);

  /** ssize_t read(int fd, void *buf, size_t count) */
  public static final MethodHandle READ =
      downcall(
          "read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), CAPTURE_ERRNO);

  /** ssize_t write(int fd, const void *buf, size_t count) */
  public static final MethodHandle WRITE =
      downcall(
          "write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), CAPTURE_ERRNO);

  /** int ioctl(int fd, unsigned long request, void *arg) (variadic third argument) */
  public static final MethodHandle IOCTL =
      downcall(
          "ioctl",
          FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS),
          CAPTURE_ERRNO,
          Linker.Option.firstVariadicArg(2));

  /** int socket(int domain, int type, int protocol) */
  public static final MethodHandle SOCKET =
      downcall(
          "socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), CAPTURE_ERRNO);

  /** int eventfd(unsigned int initval, int flags) */
  public static final MethodHandle EVENTFD =
      downcall("eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), CAPTURE_ERRNO);

  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout) */
  public static final MethodHandle POLL =
      downcall(
          "poll", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT), CAPTURE_ERRNO);

  /** ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) */
  public static final MethodHandle SENDMSG =
      downcall(
          "sendmsg", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT), CAPTURE_ERRNO);

  /** ssize_t recvmsg(int fd, struct msghdr *msg, int flags) */
  public static final MethodHandle RECVMSG =
      downcall(
          "recvmsg", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT), CAPTURE_ERRNO);

  /** int setsockopt(int fd, int level, int name, const void *value, socklen_t len) */
  public static final MethodHandle SETSOCKOPT =
      downcall(
          "setsockopt",
          FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT),
          CAPTURE_ERRNO);

  /** int bind(int fd, const struct sockaddr *addr, socklen_t len) */
  public static final MethodHandle BIND =
      downcall("bind", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT), CAPTURE_ERRNO);

  /** int getsockname(int fd, struct sockaddr *addr, socklen_t *len) */
  public static final MethodHandle GETSOCKNAME =
      downcall(
          "getsockname",
          FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS),
          CAPTURE_ERRNO);

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
  public static MemorySegment newErrnoSegment(Arena arena) {
    return arena.allocate(CAPTURE_LAYOUT);
  }

  public static int errno(MemorySegment captureState) {
    return (int) ERRNO_HANDLE.get(captureState, 0L);
  }

  // ---------------------------------------------------------------- convenience (cold paths)

  public static int open(MemorySegment errno, String path, int flags) {
    try (Arena arena = Arena.ofConfined()) {
      return (int) OPEN.invokeExact(errno, arena.allocateFrom(path), flags, 0);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  public static int close(MemorySegment errno, int fd) {
    try {
      return (int) CLOSE.invokeExact(errno, fd);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  public static int ioctl(MemorySegment errno, int fd, long request, MemorySegment arg) {
    try {
      return (int) IOCTL.invokeExact(errno, fd, request, arg);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  public static int socket(MemorySegment errno, int domain, int type, int protocol) {
    try {
      return (int) SOCKET.invokeExact(errno, domain, type, protocol);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  public static int eventfd(MemorySegment errno, int initval, int flags) {
    try {
      return (int) EVENTFD.invokeExact(errno, initval, flags);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  /** setsockopt with an int value; returns 0 or -1 (errno in {@code errno}). */
  public static int setIntOption(MemorySegment errno, int fd, int level, int name, int value) {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment v = arena.allocateFrom(JAVA_INT, value);
      return (int) SETSOCKOPT.invokeExact(errno, fd, level, name, v, 4);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  public static long write(MemorySegment errno, int fd, MemorySegment buf, long count) {
    try {
      return (long) WRITE.invokeExact(errno, fd, buf, count);
    } catch (Throwable t) {
      throw rethrow(t);
    }
  }

  /** Closes {@code fd}, ignoring errors (Linux closes the fd even when close returns EINTR). */
  public static void closeQuietly(int fd) {
    if (fd < 0) {
      return;
    }
    try (Arena arena = Arena.ofConfined()) {
      close(newErrnoSegment(arena), fd);
    }
  }

  /** "ENODEV (19): No such device" */
  public static String describeErrno(int errno) {
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

  public static String errnoName(int errno) {
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
      case EAFNOSUPPORT -> "EAFNOSUPPORT";
      case EADDRINUSE -> "EADDRINUSE";
      case ENETUNREACH -> "ENETUNREACH";
      case ENOBUFS -> "ENOBUFS";
      case ECONNREFUSED -> "ECONNREFUSED";
      case EHOSTUNREACH -> "EHOSTUNREACH";
      default -> null;
    };
  }

  public static RuntimeException rethrow(Throwable t) {
    if (t instanceof RuntimeException re) {
      throw re;
    }
    if (t instanceof Error e) {
      throw e;
    }
    throw new IllegalStateException("unexpected exception from native call", t);
  }
}
