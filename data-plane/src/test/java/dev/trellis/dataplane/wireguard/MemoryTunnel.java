package dev.trellis.dataplane.wireguard;

import dev.trellis.dataplane.tun.PacketTunnel;
import java.nio.ByteBuffer;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * An in-memory stand-in for a TUN device in JVM-local unit tests. The test {@link #inject}s packets
 * the device then reads (as if the kernel routed them into the interface), and {@link
 * #awaitWritten} the packets the device wrote (as if delivered to the kernel). The real TUN device
 * is covered by the end-to-end tests.
 */
public final class MemoryTunnel implements PacketTunnel {
  /** Wakes a blocked reader on close; compared by identity. */
  private static final byte[] CLOSED = new byte[0];

  private final String name;
  private final BlockingQueue<byte[]> toDevice = new LinkedBlockingQueue<>();
  private final BlockingQueue<byte[]> fromDevice = new LinkedBlockingQueue<>();
  private volatile boolean closed;

  public MemoryTunnel(String name) {
    this.name = name;
  }

  /** A packet "sent by the host" into the tunnel: the device reads it next. */
  public void inject(byte[] packet) {
    toDevice.add(packet.clone());
  }

  /** The next packet the device wrote, or null if none arrives before the timeout. */
  public byte[] awaitWritten(long timeout, TimeUnit unit) throws InterruptedException {
    return fromDevice.poll(timeout, unit);
  }

  /** A packet the device already wrote, without waiting. */
  public byte[] pollWritten() {
    return fromDevice.poll();
  }

  public boolean isClosed() {
    return closed;
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public int mtu() {
    return 1420;
  }

  @Override
  public int read(ByteBuffer dst) {
    while (true) {
      if (closed) {
        return -1;
      }
      byte[] packet;
      try {
        packet = toDevice.take();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return -1;
      }
      if (packet == CLOSED) {
        toDevice.add(CLOSED); // any other reader wakes too
        return -1;
      }
      if (packet.length > dst.remaining()) {
        continue; // a real TUN would truncate; tests never inject such packets
      }
      dst.put(packet);
      return packet.length;
    }
  }

  @Override
  public boolean write(ByteBuffer src) {
    if (closed) {
      return false;
    }
    byte[] packet = new byte[src.remaining()];
    src.get(packet);
    fromDevice.add(packet);
    return true;
  }

  @Override
  public void close() {
    closed = true;
    toDevice.add(CLOSED);
  }
}
