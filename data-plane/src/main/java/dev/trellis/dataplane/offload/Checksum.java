package dev.trellis.dataplane.offload;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The Internet checksum (RFC 1071) over byte arrays: sums of big-endian 16-bit words, added with
 * end-around carry and complemented at the end. Sums are kept unfolded in a {@code long} so a
 * caller can add the pseudo-header, the header and the payload in any order.
 */
public final class Checksum {
  private static final VarHandle INT_BE =
      MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);

  static final int PROTO_TCP = 6;
  static final int PROTO_UDP = 17;

  private Checksum() {}

  /** Adds the bytes {@code [off, off+len)} as big-endian 16-bit words (a last odd byte padded). */
  public static long add(long sum, byte[] b, int off, int len) {
    int i = off;
    int end = off + len;
    for (; i + 4 <= end; i += 4) {
      sum += (int) INT_BE.get(b, i) & 0xffff_ffffL;
    }
    if (i + 2 <= end) {
      sum += ((b[i] & 0xff) << 8) | (b[i + 1] & 0xff);
      i += 2;
    }
    if (i < end) {
      sum += (b[i] & 0xff) << 8;
    }
    return sum;
  }

  /** Folds a sum to 16 bits with end-around carry (not complemented). */
  public static int fold(long sum) {
    while ((sum >>> 16) != 0) {
      sum = (sum & 0xffff) + (sum >>> 16);
    }
    return (int) sum;
  }

  /** The checksum to store: the folded sum, complemented. */
  public static int finish(long sum) {
    return ~fold(sum) & 0xffff;
  }

  /**
   * The pseudo-header of the IP packet at {@code ip}: source and destination address, protocol and
   * the transport length {@code l4Length}.
   */
  public static long pseudoHeader(byte[] p, int ip, boolean v6, int protocol, int l4Length) {
    long sum = v6 ? add(0, p, ip + 8, 32) : add(0, p, ip + 12, 8);
    return sum + protocol + l4Length;
  }

  /** The IPv4 header checksum for a header of {@code length} bytes, its checksum field ignored. */
  public static int ipv4Header(byte[] p, int ip, int length) {
    long sum = add(0, p, ip, 10) + add(0, p, ip + 12, length - 12);
    return finish(sum);
  }

  static void putShort(byte[] p, int at, int value) {
    p[at] = (byte) (value >>> 8);
    p[at + 1] = (byte) value;
  }

  static int getShort(byte[] p, int at) {
    return ((p[at] & 0xff) << 8) | (p[at + 1] & 0xff);
  }

  static int getInt(byte[] p, int at) {
    return (int) INT_BE.get(p, at);
  }

  static void putInt(byte[] p, int at, int value) {
    INT_BE.set(p, at, value);
  }
}
