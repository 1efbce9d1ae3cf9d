package dev.trellis.dataplane.wireguard;

import static dev.trellis.dataplane.linux.LinuxSyscalls.*;

import dev.trellis.dataplane.linux.GuardedFd;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.BindException;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.ByteOrder;

/**
 * The UDP socket through the Foreign Function &amp; Memory API, for what a {@link
 * java.nio.channels.DatagramChannel} cannot do: send a run of equal-sized datagrams in one {@code
 * sendmsg} with a {@code UDP_SEGMENT} control message (GSO), and take many datagrams of one sender
 * in one {@code recvmsg} with {@code UDP_GRO} on (the kernel reports their size in a control
 * message).
 *
 * <p>Layouts (LP64 Linux, x86-64 and arm64 alike): {@code struct msghdr} is 56 bytes (name@0,
 * namelen@8, iov@16, iovlen@24, control@32, controllen@40, flags@48), {@code struct iovec} 16,
 * {@code struct cmsghdr} a 16-byte header (len@0, level@8, type@12) before its data.
 *
 * <p>Threads: one receives (the inbound path); any may send, each with its own native scratch. The
 * fd is non-blocking; the receiver waits in {@code poll} with an eventfd that {@link #close}
 * signals, and the fd is closed only when no call is using it, so a late sender never writes to a
 * recycled fd number. GSO falls back to a datagram per call for good when the kernel refuses it
 * (EIO: no checksum offload on the route; EINVAL/EOPNOTSUPP: an old kernel).
 */
final class LinuxUdpBind implements UdpBind {
  private static final int MSGHDR_SIZE = 56;
  private static final int IOVEC_SIZE = 16;
  private static final int CMSG_HEADER = 16;
  private static final int SOCKADDR_IN6_SIZE = 28;
  private static final int SOCKADDR_IN_SIZE = 16;
  private static final int CONTROL_SIZE = 64;
  private static final int MSG_TRUNC = 0x20;

  /** The largest run one GSO send takes: the kernel's limits are 64 segments and 64 KiB. */
  static final int MAX_SEGMENTS = 64;

  static final int MAX_SEGMENTED_BYTES = 65000;

  /** A GRO receive can be up to 64 segments; with 1452-byte datagrams that is more than 64 KiB. */
  static final int RECEIVE_CAPACITY = 256 * 1024;

  private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

  private final GuardedFd guard;
  private final int fd;
  private final boolean v6;
  private final int port;
  private final boolean gro;
  private volatile boolean gso;

  // Receiver-thread state: the native buffer and the last source, decoded once.
  private MemorySegment receiveBuffer;
  private final byte[] lastSource = new byte[SOCKADDR_IN6_SIZE];
  private InetSocketAddress lastSourceAddress;

  private LinuxUdpBind(GuardedFd guard, boolean v6, int port, boolean gso, boolean gro) {
    this.guard = guard;
    this.fd = guard.fd();
    this.v6 = v6;
    this.port = port;
    this.gso = gso;
    this.gro = gro;
  }

  /**
   * Opens the socket, or returns null where this host cannot (no FFM access, not Linux): the caller
   * then uses the portable one.
   *
   * @throws BindException when the port is taken
   */
  static LinuxUdpBind tryOpen(int port, boolean gso, boolean gro) throws IOException {
    MemorySegment errno;
    Arena arena = Arena.ofConfined();
    try {
      errno = newErrnoSegment(arena);
      boolean v6 = true;
      int fd = socket(errno, AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0 && errno(errno) == EAFNOSUPPORT) {
        v6 = false; // IPv6 disabled on this host
        fd = socket(errno, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      }
      if (fd < 0) {
        throw new IOException("cannot create a UDP socket: " + describeErrno(errno(errno)));
      }
      boolean ok = false;
      try {
        if (v6) {
          setIntOption(errno, fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
        }
        for (int[] opt : new int[][] {{SO_RCVBUFFORCE, SO_RCVBUF}, {SO_SNDBUFFORCE, SO_SNDBUF}}) {
          if (setIntOption(errno, fd, SOL_SOCKET, opt[0], SOCKET_BUFFER_BYTES) < 0) {
            setIntOption(errno, fd, SOL_SOCKET, opt[1], SOCKET_BUFFER_BYTES); // capped: fine
          }
        }
        MemorySegment addr = arena.allocate(SOCKADDR_IN6_SIZE, 8);
        int addrLength = encode(addr, v6, null, port);
        if ((int) BIND.invokeExact(errno, fd, addr, addrLength) < 0) {
          int e = errno(errno);
          String text = "cannot bind UDP port " + port + ": " + describeErrno(e);
          throw e == EADDRINUSE ? new BindException(text) : new IOException(text);
        }
        MemorySegment length = arena.allocateFrom(ValueLayout.JAVA_INT, SOCKADDR_IN6_SIZE);
        if ((int) GETSOCKNAME.invokeExact(errno, fd, addr, length) < 0) {
          throw new IOException("getsockname: " + describeErrno(errno(errno)));
        }
        int bound =
            Short.toUnsignedInt(
                addr.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), 2));
        boolean groOn = gro && setIntOption(errno, fd, SOL_UDP, UDP_GRO, 1) == 0;
        ok = true;
        return new LinuxUdpBind(GuardedFd.of(fd), v6, bound, gso, groOn);
      } finally {
        if (!ok) {
          closeQuietly(fd);
        }
      }
    } catch (IOException e) {
      throw e;
    } catch (UnsatisfiedLinkError | IllegalCallerException | UnsupportedOperationException e) {
      return null; // no native access here
    } catch (Throwable t) {
      throw rethrow(t);
    } finally {
      arena.close();
    }
  }

  @Override
  public int port() {
    return port;
  }

  @Override
  public boolean segmentsInOneCall() {
    return gso;
  }

  @Override
  public boolean coalescesReceives() {
    return gro;
  }

  @Override
  public boolean receive(Received into) throws IOException {
    if (!guard.acquire()) {
      return false;
    }
    try {
      Scratch s = SCRATCH.get();
      if (receiveBuffer == null) {
        receiveBuffer = Arena.ofAuto().allocate(RECEIVE_CAPACITY, 16);
      }
      int capacity = Math.min(into.data.length, RECEIVE_CAPACITY);
      MemorySegment msg = s.msghdr;
      msg.fill((byte) 0);
      msg.set(ValueLayout.ADDRESS, 0, s.from);
      msg.set(ValueLayout.JAVA_INT, 8, SOCKADDR_IN6_SIZE);
      s.iov.set(ValueLayout.ADDRESS, 0, receiveBuffer);
      s.iov.set(ValueLayout.JAVA_LONG, 8, capacity);
      msg.set(ValueLayout.ADDRESS, 16, s.iov);
      msg.set(ValueLayout.JAVA_LONG, 24, 1L);
      msg.set(ValueLayout.ADDRESS, 32, s.control);
      msg.set(ValueLayout.JAVA_LONG, 40, CONTROL_SIZE);
      for (; ; ) {
        long n;
        try {
          n = (long) RECVMSG.invokeExact(s.errno, fd, msg, 0);
        } catch (Throwable t) {
          throw rethrow(t);
        }
        if (n >= 0) {
          int flags = msg.get(ValueLayout.JAVA_INT, 48);
          if ((flags & MSG_TRUNC) != 0) {
            n = 0; // cut short: nothing of it can be trusted to be whole
          }
          MemorySegment.copy(receiveBuffer, ValueLayout.JAVA_BYTE, 0, into.data, 0, (int) n);
          into.length = (int) n;
          into.segmentSize = segmentSize(s.control, msg.get(ValueLayout.JAVA_LONG, 40), (int) n);
          into.source = source(s.from);
          return true;
        }
        int e = errno(s.errno);
        if (e == EAGAIN) {
          if (!guard.await(s.errno, s.pollFds, POLLIN, "the UDP socket")) {
            return false;
          }
          msg.set(ValueLayout.JAVA_INT, 8, SOCKADDR_IN6_SIZE);
          msg.set(ValueLayout.JAVA_LONG, 40, CONTROL_SIZE);
        } else if (e == EINTR || e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH) {
          // ICMP errors for an earlier send surface here; they are not ours to report
          msg.set(ValueLayout.JAVA_INT, 8, SOCKADDR_IN6_SIZE);
          msg.set(ValueLayout.JAVA_LONG, 40, CONTROL_SIZE);
        } else if (e == EBADF) {
          return false;
        } else {
          throw new IOException("recvmsg: " + describeErrno(e));
        }
      }
    } finally {
      guard.release();
    }
  }

  /** The GRO segment size from the control messages, or the whole length without one. */
  private static int segmentSize(MemorySegment control, long controlLength, int length) {
    long at = 0;
    while (at + CMSG_HEADER <= controlLength) {
      long len = control.get(ValueLayout.JAVA_LONG, at);
      if (len < CMSG_HEADER || at + len > controlLength) {
        break;
      }
      int level = control.get(ValueLayout.JAVA_INT, at + 8);
      int type = control.get(ValueLayout.JAVA_INT, at + 12);
      if (level == SOL_UDP && type == UDP_GRO && len >= CMSG_HEADER + 4) {
        int size = control.get(ValueLayout.JAVA_INT, at + CMSG_HEADER);
        return size > 0 && size < length ? size : length;
      }
      at += (len + 7) & ~7L;
    }
    return length;
  }

  private InetSocketAddress source(MemorySegment name) {
    boolean same = true;
    for (int i = 0; i < SOCKADDR_IN6_SIZE; i++) {
      byte b = name.get(ValueLayout.JAVA_BYTE, i);
      if (lastSource[i] != b) {
        lastSource[i] = b;
        same = false;
      }
    }
    if (!same || lastSourceAddress == null) {
      lastSourceAddress = decode(lastSource);
    }
    return lastSourceAddress;
  }

  static InetSocketAddress decode(byte[] sa) {
    int family = (sa[0] & 0xff) | ((sa[1] & 0xff) << 8);
    int port = ((sa[2] & 0xff) << 8) | (sa[3] & 0xff);
    try {
      if (family == AF_INET) {
        return new InetSocketAddress(
            InetAddress.getByAddress(new byte[] {sa[4], sa[5], sa[6], sa[7]}), port);
      }
      byte[] a = new byte[16];
      System.arraycopy(sa, 8, a, 0, 16);
      boolean mapped = a[10] == (byte) 0xff && a[11] == (byte) 0xff;
      for (int i = 0; i < 10; i++) {
        mapped &= a[i] == 0;
      }
      if (mapped) {
        // what a DatagramChannel reports too: an IPv4 peer is an IPv4 address
        return new InetSocketAddress(
            InetAddress.getByAddress(new byte[] {a[12], a[13], a[14], a[15]}), port);
      }
      int scope =
          (sa[24] & 0xff) | (sa[25] & 0xff) << 8 | (sa[26] & 0xff) << 16 | (sa[27] & 0xff) << 24;
      return new InetSocketAddress(
          scope != 0 ? Inet6Address.getByAddress(null, a, scope) : InetAddress.getByAddress(a),
          port);
    } catch (UnknownHostException e) {
      throw new IllegalStateException(e); // only for a wrong length, which cannot happen here
    }
  }

  /** Encodes {@code address:port} ({@code null}: the wildcard) for this socket's family. */
  private static int encode(MemorySegment sa, boolean v6, InetAddress address, int port) {
    sa.fill((byte) 0);
    sa.set(ValueLayout.JAVA_BYTE, 2, (byte) (port >>> 8));
    sa.set(ValueLayout.JAVA_BYTE, 3, (byte) port);
    if (!v6) {
      sa.set(ValueLayout.JAVA_SHORT, 0, (short) AF_INET);
      if (address != null) {
        MemorySegment.copy(address.getAddress(), 0, sa, ValueLayout.JAVA_BYTE, 4, 4);
      }
      return SOCKADDR_IN_SIZE;
    }
    sa.set(ValueLayout.JAVA_SHORT, 0, (short) AF_INET6);
    if (address instanceof Inet4Address) {
      sa.set(ValueLayout.JAVA_BYTE, 18, (byte) 0xff);
      sa.set(ValueLayout.JAVA_BYTE, 19, (byte) 0xff);
      MemorySegment.copy(address.getAddress(), 0, sa, ValueLayout.JAVA_BYTE, 20, 4);
    } else if (address instanceof Inet6Address a6) {
      MemorySegment.copy(a6.getAddress(), 0, sa, ValueLayout.JAVA_BYTE, 8, 16);
      sa.set(ValueLayout.JAVA_INT, 24, a6.getScopeId());
    }
    return SOCKADDR_IN6_SIZE;
  }

  @Override
  public void send(byte[] datagram, int off, int length, InetSocketAddress to) throws IOException {
    int e = sendmsg(datagram, off, length, 0, to);
    if (e != 0 && e != EBADF) {
      throw new IOException("sendmsg to " + to + ": " + describeErrno(e));
    }
  }

  @Override
  public void sendSegments(byte[] buf, int off, int length, int segmentSize, InetSocketAddress to)
      throws IOException {
    if (length <= segmentSize) {
      sendmsg(buf, off, length, 0, to);
      return;
    }
    if (gso
        && length <= MAX_SEGMENTED_BYTES
        && (length + segmentSize - 1) / segmentSize <= MAX_SEGMENTS) {
      int e = sendmsg(buf, off, length, segmentSize, to);
      if (e == 0) {
        return;
      }
      if (e == EIO || e == EINVAL || e == EOPNOTSUPP) {
        gso = false; // the kernel cannot segment for us on this route: one per call from now on
        Device.LOG.info("UDP GSO refused (" + describeErrno(e) + "); sending datagram by datagram");
      } else {
        return; // a full buffer or an unreachable peer: dropped, as a single send would be
      }
    }
    for (int o = off; o < off + length; o += segmentSize) {
      sendmsg(buf, o, Math.min(segmentSize, off + length - o), 0, to);
    }
  }

  /** One sendmsg; 0 or the errno it failed with (a few are thrown, the routine ones returned). */
  private int sendmsg(byte[] buf, int off, int length, int segmentSize, InetSocketAddress to)
      throws IOException {
    if (to.isUnresolved()) {
      throw new IOException("unresolved address " + to);
    }
    if (!v6 && to.getAddress() instanceof Inet6Address) {
      throw new IOException("IPv6 is off on this host: cannot send to " + to);
    }
    if (!guard.acquire()) {
      return EBADF;
    }
    try {
      Scratch s = SCRATCH.get();
      MemorySegment data = s.data(length);
      MemorySegment.copy(buf, off, data, ValueLayout.JAVA_BYTE, 0, length);
      if (to != s.lastTo || v6 != s.lastV6) {
        s.nameLength = encode(s.name, v6, to.getAddress(), to.getPort());
        s.lastTo = to;
        s.lastV6 = v6;
      }
      MemorySegment msg = s.msghdr;
      msg.fill((byte) 0);
      msg.set(ValueLayout.ADDRESS, 0, s.name);
      msg.set(ValueLayout.JAVA_INT, 8, s.nameLength);
      s.iov.set(ValueLayout.ADDRESS, 0, data);
      s.iov.set(ValueLayout.JAVA_LONG, 8, length);
      msg.set(ValueLayout.ADDRESS, 16, s.iov);
      msg.set(ValueLayout.JAVA_LONG, 24, 1L);
      if (segmentSize > 0) {
        MemorySegment c = s.control;
        c.set(ValueLayout.JAVA_LONG, 0, CMSG_HEADER + 2);
        c.set(ValueLayout.JAVA_INT, 8, SOL_UDP);
        c.set(ValueLayout.JAVA_INT, 12, UDP_SEGMENT);
        c.set(ValueLayout.JAVA_SHORT, CMSG_HEADER, (short) segmentSize);
        msg.set(ValueLayout.ADDRESS, 32, c);
        msg.set(ValueLayout.JAVA_LONG, 40, CMSG_HEADER + 8);
      }
      for (; ; ) {
        long n;
        try {
          n = (long) SENDMSG.invokeExact(s.errno, fd, msg, 0);
        } catch (Throwable t) {
          throw rethrow(t);
        }
        if (n >= 0) {
          return 0;
        }
        int e = errno(s.errno);
        if (e == EINTR) {
          continue;
        }
        if (e == EAGAIN) {
          // The send buffer is full: wait for room as a blocking socket would (backpressure to
          // the tunnel reader), unless the socket is closing.
          if (!guard.await(s.errno, s.pollFds, POLLOUT, "the UDP socket")) {
            return EBADF;
          }
          continue;
        }
        return e;
      }
    } finally {
      guard.release();
    }
  }

  @Override
  public void close() {
    guard.close();
  }

  /** Per-thread native memory for the calls; freed by the GC with the thread's entry. */
  private static final class Scratch {
    final Arena arena = Arena.ofAuto();
    final MemorySegment errno = newErrnoSegment(arena);
    final MemorySegment msghdr = arena.allocate(MSGHDR_SIZE, 8);
    final MemorySegment iov = arena.allocate(IOVEC_SIZE, 8);

    /** The destination of sends; {@link #lastTo} says whose address it holds. */
    final MemorySegment name = arena.allocate(SOCKADDR_IN6_SIZE, 8);

    /**
     * The source of receives: apart from {@link #name}, or a thread that receives and sends (the
     * inbound thread answering a disco ping) would send to the last sender instead.
     */
    final MemorySegment from = arena.allocate(SOCKADDR_IN6_SIZE, 8);

    final MemorySegment control = arena.allocate(CONTROL_SIZE, 8);
    final MemorySegment pollFds = arena.allocate(2L * POLLFD_SIZE, 8);
    MemorySegment data = MemorySegment.NULL;
    InetSocketAddress lastTo;
    boolean lastV6;
    int nameLength;

    MemorySegment data(int length) {
      if (data.byteSize() < length) {
        data = arena.allocate(Math.max(length, 2048), 16);
      }
      return data;
    }
  }
}
