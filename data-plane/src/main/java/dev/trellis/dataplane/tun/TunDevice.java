package dev.trellis.dataplane.tun;

import static dev.trellis.dataplane.linux.LinuxSyscalls.*;

import dev.trellis.dataplane.linux.GuardedFd;
import dev.trellis.dataplane.linux.LinuxSyscalls;
import dev.trellis.dataplane.offload.GsoSplitter;
import dev.trellis.dataplane.offload.VirtioNetHeader;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.nio.charset.StandardCharsets;

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
 *
 * <p>Opened with offloads ({@code IFF_VNET_HDR} and {@code TUNSETOFFLOAD} TSO/USO), every read and
 * write carries a virtio-net header: a read may then be one large packet, which {@link #read}
 * splits with a {@link GsoSplitter} and hands out packet by packet (the split packets belong to the
 * one reading thread), and {@link #writeOffloaded} takes large coalesced packets. {@link #write}
 * still takes one plain packet.
 */
public final class TunDevice implements PacketTunnel {

  public static final int DEFAULT_MTU = 1420;

  private static final String TUN_PATH = "/dev/net/tun";

  private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

  private final GuardedFd guard;
  private final int fd;
  private final String name;
  private final int mtu;

  /** The TUN_F_* offloads the kernel took; 0 = no virtio-net header on reads and writes. */
  private final int offloadFlags;

  // Reader-thread state in offload mode: the last large read and the packets split from it.
  private final ByteBuffer rawRead;
  private final byte[] rawBytes;
  private final GsoSplitter splitter;
  private int nextSplit;
  private int splitCount;
  private long malformedReads;

  private TunDevice(GuardedFd guard, String name, int mtu, int offloadFlags) {
    this.guard = guard;
    this.fd = guard.fd();
    this.name = name;
    this.mtu = mtu;
    this.offloadFlags = offloadFlags;
    if (offloadFlags != 0) {
      rawRead = ByteBuffer.allocateDirect(VirtioNetHeader.LENGTH + MAX_OFFLOADED_PACKET);
      rawBytes = new byte[rawRead.capacity()];
      splitter = new GsoSplitter();
    } else {
      rawRead = null;
      rawBytes = null;
      splitter = null;
    }
  }

  /** A TSO/USO packet can be as large as an IP packet gets. */
  private static final int MAX_OFFLOADED_PACKET = 65535;

  private static final int OFFLOADS_WITH_USO =
      TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6;
  private static final int OFFLOADS_TSO_ONLY = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

  /** As {@link #open(String, int, boolean)} without offloads. */
  public static TunDevice open(String name, int mtu) throws IOException {
    return open(name, mtu, false);
  }

  /**
   * Creates (or attaches to) TUN interface {@code name} with {@code IFF_TUN|IFF_NO_PI} and sets its
   * MTU. Does not bring the link up. An empty name lets the kernel choose ({@code tunN}).
   *
   * @throws IOException with the errno name/number and a hint on failure (no permission, name too
   *     long, device busy, ...)
   */
  public static TunDevice open(String name, int mtu, boolean offloads) throws IOException {
    if (offloads) {
      try {
        return openWith(name, mtu, true);
      } catch (OffloadRefused e) {
        // an old kernel, or an existing interface opened without IFF_VNET_HDR: go without
      }
    }
    return openWith(name, mtu, false);
  }

  /** TUNSETIFF with IFF_VNET_HDR or TUNSETOFFLOAD said no. */
  private static final class OffloadRefused extends IOException {
    OffloadRefused(String message) {
      super(message);
    }
  }

  private static TunDevice openWith(String name, int mtu, boolean offloads) throws IOException {
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
      boolean ok = false;
      try {
        MemorySegment ifr = arena.allocate(IFREQ_SIZE, 8);
        MemorySegment.copy(nameBytes, 0, ifr, ValueLayout.JAVA_BYTE, 0, nameBytes.length);
        short ifFlags = (short) (IFF_TUN | IFF_NO_PI | (offloads ? IFF_VNET_HDR : 0));
        ifr.set(ValueLayout.JAVA_SHORT, IFREQ_UNION_OFFSET, ifFlags);
        if (ioctl(errno, tunFd, TUNSETIFF, ifr) < 0) {
          int e = errno(errno);
          if (offloads && e == EINVAL) {
            throw new OffloadRefused("TUNSETIFF with IFF_VNET_HDR: " + describeErrno(e));
          }
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
        int offloadFlags = 0;
        if (offloads) {
          // USO needs Linux 6.2; without it TSO alone still carries TCP, the bulk of traffic.
          if (ioctl(errno, tunFd, TUNSETOFFLOAD, MemorySegment.ofAddress(OFFLOADS_WITH_USO)) == 0) {
            offloadFlags = OFFLOADS_WITH_USO;
          } else if (ioctl(errno, tunFd, TUNSETOFFLOAD, MemorySegment.ofAddress(OFFLOADS_TSO_ONLY))
              == 0) {
            offloadFlags = OFFLOADS_TSO_ONLY;
          } else {
            throw new OffloadRefused("TUNSETOFFLOAD: " + describeErrno(errno(errno)));
          }
        }

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

        ok = true;
        return new TunDevice(GuardedFd.of(tunFd), actualName, mtu, offloadFlags);
      } finally {
        closeQuietly(sock);
        if (!ok) {
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

  /** Whether reads may be large packets to split and {@link #writeOffloaded} takes them. */
  @Override
  public boolean offloads() {
    return offloadFlags != 0;
  }

  /** The TUN_F_* flags the kernel accepted (0 without offloads). */
  public int offloadFlags() {
    return offloadFlags;
  }

  /** Large reads that could not be split (bad headers from the kernel; never seen). */
  public long malformedReads() {
    return malformedReads;
  }

  @Override
  public boolean hasBufferedReads() {
    return nextSplit < splitCount;
  }

  /**
   * Reads one IP packet into {@code dst[0, ...)}: in offload mode from the packets split from the
   * last large read, reading again only when they are used up. Reader thread only.
   *
   * @return the packet length, or -1 once the device is closed or gone
   */
  @Override
  public int read(byte[] dst) throws IOException {
    if (offloadFlags == 0) {
      return PacketTunnel.super.read(dst);
    }
    int i = nextSplitPacket();
    if (i < 0) {
      return -1;
    }
    int length = splitter.length(i);
    System.arraycopy(splitter.buffer(), splitter.offset(i), dst, 0, length);
    return length;
  }

  /**
   * The splitter's index of the next packet, reading (and splitting) the TUN again when the last
   * read is used up; -1 once the device is closed or gone. Reader thread only.
   */
  private int nextSplitPacket() throws IOException {
    while (nextSplit >= splitCount) {
      nextSplit = 0;
      splitCount = 0;
      if (!guard.acquire()) {
        return -1;
      }
      int n;
      try {
        rawRead.clear();
        n = readDirect(rawRead, SCRATCH.get());
      } finally {
        guard.release();
      }
      if (n < 0) {
        return -1;
      }
      rawRead.flip().get(rawBytes, 0, n);
      splitCount = splitter.split(rawBytes, 0, n);
      if (splitCount == 0) {
        malformedReads++;
      }
    }
    return nextSplit++;
  }

  /** Writes a virtio-net header and the packet after it (offload mode only). */
  @Override
  public boolean writeOffloaded(ByteBuffer src) throws IOException {
    if (offloadFlags == 0) {
      throw new IllegalStateException("TUN '" + name + "' was opened without offloads");
    }
    return writeRaw(src);
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
    if (offloadFlags != 0) {
      int i = nextSplitPacket();
      if (i < 0) {
        return -1;
      }
      int length = Math.min(splitter.length(i), dst.remaining()); // truncated, as the kernel would
      dst.put(splitter.buffer(), splitter.offset(i), length);
      return length;
    }
    if (!guard.acquire()) {
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
      guard.release();
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
        if (!guard.await(s.errno, s.pollFds, POLLIN, "TUN '" + name + "'")) {
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
    if (offloadFlags != 0) {
      // One plain packet: a header that says so in front of it.
      Scratch s = SCRATCH.get();
      int pos = src.position();
      ByteBuffer tmp = s.bounce(VirtioNetHeader.LENGTH + src.remaining());
      for (int i = 0; i < VirtioNetHeader.LENGTH; i++) {
        tmp.put((byte) 0);
      }
      tmp.put(src.duplicate()).flip();
      boolean ok = writeRaw(tmp);
      if (ok) {
        src.position(src.limit());
      } else {
        src.position(pos);
      }
      return ok;
    }
    return writeRaw(src);
  }

  private boolean writeRaw(ByteBuffer src) throws IOException {
    if (!guard.acquire()) {
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
      guard.release();
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
        if (!guard.await(s.errno, s.pollFds, POLLOUT, "TUN '" + name + "'")) {
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

  private static boolean isGone(int e) {
    return e == EBADFD || e == EIO || e == ENXIO || e == ENODEV || e == EBADF;
  }

  /** Closes the device and wakes a blocked reader (which then returns -1). Idempotent. */
  @Override
  public void close() {
    guard.close();
  }

  @Override
  public String toString() {
    return "TunDevice["
        + name
        + ", mtu="
        + mtu
        + (offloadFlags != 0 ? ", offloads=0x" + Integer.toHexString(offloadFlags) : "")
        + (guard.closing() ? ", closed]" : "]");
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
