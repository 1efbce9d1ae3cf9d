package dev.trellis.dataplane.offload;

/**
 * The 10-byte {@code struct virtio_net_hdr} that precedes every packet read from or written to a
 * TUN opened with {@code IFF_VNET_HDR}. Fields are little-endian (the TUN's default on
 * little-endian hosts, which x86-64 and arm64 are):
 *
 * <pre>
 *   0  u8   flags        NEEDS_CSUM: the checksum at csum_start+csum_offset holds only the
 *                        pseudo-header sum; DATA_VALID: the checksum was checked
 *   1  u8   gso_type     NONE, TCPV4, TCPV6, UDP_L4 (+ ECN bit): the packet stands for several
 *   2  u16  hdr_len      bytes of IP + transport header
 *   4  u16  gso_size     payload bytes per segment
 *   6  u16  csum_start   where the checksummed part starts (the transport header)
 *   8  u16  csum_offset  where in it the checksum field is
 * </pre>
 */
public final class VirtioNetHeader {
  public static final int LENGTH = 10;

  public static final int F_NEEDS_CSUM = 1;
  public static final int F_DATA_VALID = 2;

  public static final int GSO_NONE = 0;
  public static final int GSO_TCPV4 = 1;
  public static final int GSO_TCPV6 = 4;
  public static final int GSO_UDP_L4 = 5;
  public static final int GSO_ECN = 0x80;

  private VirtioNetHeader() {}

  public static int flags(byte[] b, int off) {
    return b[off] & 0xff;
  }

  public static int gsoType(byte[] b, int off) {
    return b[off + 1] & 0xff;
  }

  public static int hdrLen(byte[] b, int off) {
    return le16(b, off + 2);
  }

  public static int gsoSize(byte[] b, int off) {
    return le16(b, off + 4);
  }

  public static int csumStart(byte[] b, int off) {
    return le16(b, off + 6);
  }

  public static int csumOffset(byte[] b, int off) {
    return le16(b, off + 8);
  }

  /** Writes a header; {@link #none} for a plain packet. */
  public static void write(
      byte[] b,
      int off,
      int flags,
      int gsoType,
      int hdrLen,
      int gsoSize,
      int csumStart,
      int csumOffset) {
    b[off] = (byte) flags;
    b[off + 1] = (byte) gsoType;
    putLe16(b, off + 2, hdrLen);
    putLe16(b, off + 4, gsoSize);
    putLe16(b, off + 6, csumStart);
    putLe16(b, off + 8, csumOffset);
  }

  /** A header for one complete packet whose checksums are already right. */
  public static void none(byte[] b, int off) {
    write(b, off, 0, GSO_NONE, 0, 0, 0, 0);
  }

  private static int le16(byte[] b, int at) {
    return (b[at] & 0xff) | ((b[at + 1] & 0xff) << 8);
  }

  private static void putLe16(byte[] b, int at, int v) {
    b[at] = (byte) v;
    b[at + 1] = (byte) (v >>> 8);
  }
}
