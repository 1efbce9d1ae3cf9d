package dev.trellis.dataplane.filter;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.StampedLock;
import java.util.function.LongSupplier;

/**
 * The UDP flows this node opened: (remote address, remote port, local port) of the UDP packets it
 * sent into the overlay, so the {@link PacketFilter} lets their answers in. A flow idle for longer
 * than the idle time no longer matches.
 *
 * <p>Bounded and allocation-free: a set-associative table, {@link #WAYS} slots per bucket, in
 * primitive arrays. A new flow takes an empty slot of its bucket, else the one idle longest there
 * (the oldest flow of that bucket, not of the whole table, is evicted; the table never holds more
 * than its capacity). Buckets are picked by a hash with a random seed per table.
 *
 * <p>Threads: the outbound (tunnel-reading) thread {@link #record}s; inbound threads look up at the
 * same time, without locking, through an optimistic read that is retried if a slot was replaced
 * meanwhile. Replacing a slot takes the write lock (so several recording threads would also be
 * safe); refreshing a known flow's time is a single atomic write, at most once per {@link
 * #REFRESH_NANOS}.
 */
public final class FlowTable {
  public static final int DEFAULT_CAPACITY = 16_384;
  public static final Duration DEFAULT_IDLE = Duration.ofSeconds(120);

  static final int WAYS = 4;

  /** A known flow's last-seen time is rewritten at most this often (fewer shared-line writes). */
  static final long REFRESH_NANOS = TimeUnit.SECONDS.toNanos(1);

  /** Optimistic lookups tried before a lookup takes the read lock. */
  private static final int OPTIMISTIC_TRIES = 3;

  /** Key word: set in every used slot (an empty slot's key is 0). */
  private static final long OCCUPIED = 1L << 40;

  /** Key word: the remote address is IPv6 (else IPv4, in the low word's low 32 bits). */
  private static final long IPV6 = 1L << 32;

  private static final int PORT_BITS = 16;

  private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);

  private final long[] addressHigh;
  private final long[] addressLow;

  /** {@link #OCCUPIED} | family | remote port | local port. */
  private final long[] key;

  /** Read and written with {@link #LONGS} (opaque): refreshed outside the lock. */
  private final long[] lastSeen;

  private final int bucketMask;
  private final long idleNanos;
  private final LongSupplier nanoClock;
  private final long seed = ThreadLocalRandom.current().nextLong();
  private final StampedLock lock = new StampedLock();

  public FlowTable() {
    this(DEFAULT_CAPACITY, DEFAULT_IDLE, System::nanoTime);
  }

  /**
   * @param capacity most flows held (rounded up to a power of two, at least {@link #WAYS})
   * @param nanoClock monotonic nanoseconds, as {@link System#nanoTime}
   */
  public FlowTable(int capacity, Duration idle, LongSupplier nanoClock) {
    int slots = Integer.highestOneBit(Math.max(WAYS, capacity) - 1) << 1;
    this.addressHigh = new long[slots];
    this.addressLow = new long[slots];
    this.key = new long[slots];
    this.lastSeen = new long[slots];
    this.bucketMask = slots / WAYS - 1;
    this.idleNanos = idle.toNanos();
    this.nanoClock = nanoClock;
  }

  /** Most flows held. */
  public int capacity() {
    return key.length;
  }

  /**
   * This node sent a UDP packet from {@code localPort} to {@code remotePort} at the remote address
   * (IPv4: {@code low} holds it as an unsigned int and {@code high} is 0; IPv6: both halves).
   */
  public void record(boolean ipv6, long high, long low, int remotePort, int localPort) {
    long k = key(ipv6, remotePort, localPort);
    int base = bucket(high, low, k);
    long now = nanoClock.getAsLong();
    long stamp = lock.tryOptimisticRead();
    int i = indexOf(base, high, low, k);
    if (i >= 0 && lock.validate(stamp)) {
      if (now - (long) LONGS.getOpaque(lastSeen, i) >= REFRESH_NANOS) {
        LONGS.setOpaque(lastSeen, i, now);
      }
      return;
    }
    long write = lock.writeLock();
    try {
      i = indexOf(base, high, low, k);
      if (i < 0) {
        i = victim(base);
        addressHigh[i] = high;
        addressLow[i] = low;
        key[i] = k;
      }
      LONGS.setOpaque(lastSeen, i, now);
    } finally {
      lock.unlockWrite(write);
    }
  }

  /**
   * Whether a packet from {@code remotePort} at the remote address to {@code localPort} answers a
   * flow this node opened and used within the idle time.
   */
  public boolean isReply(boolean ipv6, long high, long low, int remotePort, int localPort) {
    long k = key(ipv6, remotePort, localPort);
    int base = bucket(high, low, k);
    long now = nanoClock.getAsLong();
    for (int attempt = 0; attempt < OPTIMISTIC_TRIES; attempt++) {
      long stamp = lock.tryOptimisticRead();
      int i = indexOf(base, high, low, k);
      long seen = i < 0 ? 0 : (long) LONGS.getOpaque(lastSeen, i);
      if (lock.validate(stamp)) {
        return i >= 0 && now - seen < idleNanos;
      }
      Thread.onSpinWait();
    }
    long read = lock.readLock();
    try {
      int i = indexOf(base, high, low, k);
      return i >= 0 && now - (long) LONGS.getOpaque(lastSeen, i) < idleNanos;
    } finally {
      lock.unlockRead(read);
    }
  }

  /** Flows used within the idle time (a scan of the whole table: for status and tests). */
  public int size() {
    long now = nanoClock.getAsLong();
    long read = lock.readLock();
    try {
      int n = 0;
      for (int i = 0; i < key.length; i++) {
        if (key[i] != 0 && now - (long) LONGS.getOpaque(lastSeen, i) < idleNanos) {
          n++;
        }
      }
      return n;
    } finally {
      lock.unlockRead(read);
    }
  }

  private static long key(boolean ipv6, int remotePort, int localPort) {
    return OCCUPIED | (ipv6 ? IPV6 : 0) | ((long) remotePort << PORT_BITS) | localPort;
  }

  /** Index of the bucket's first slot. */
  private int bucket(long high, long low, long k) {
    long h = (high ^ seed) * 0x9E3779B97F4A7C15L;
    h = (h ^ (h >>> 29) ^ low) * 0xBF58476D1CE4E5B9L;
    h = (h ^ (h >>> 32) ^ k) * 0x94D049BB133111EBL;
    h ^= h >>> 31;
    return ((int) h & bucketMask) * WAYS;
  }

  private int indexOf(int base, long high, long low, long k) {
    for (int i = base; i < base + WAYS; i++) {
      if (key[i] == k && addressLow[i] == low && addressHigh[i] == high) {
        return i;
      }
    }
    return -1;
  }

  /** An empty slot of the bucket, else the one idle longest. Under the write lock. */
  private int victim(int base) {
    int oldest = base;
    for (int i = base; i < base + WAYS; i++) {
      if (key[i] == 0) {
        return i;
      }
      if ((long) LONGS.getOpaque(lastSeen, i) - (long) LONGS.getOpaque(lastSeen, oldest) < 0) {
        oldest = i;
      }
    }
    return oldest;
  }
}
