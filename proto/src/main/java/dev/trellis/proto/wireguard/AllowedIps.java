package dev.trellis.proto.wireguard;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Longest-prefix-match table from IPv4/IPv6 prefixes to their owner (a peer): cryptokey routing.
 * Outgoing packets pick their peer by destination; incoming packets are dropped unless their source
 * maps back to the peer that sent them.
 *
 * <p>Each address family is a path-compressed binary trie. Nodes are immutable and an update
 * rebuilds only the path it touches, then publishes the new root through a volatile field. Lookups
 * therefore need no lock and see either the old or the new table, never a half-applied change;
 * updates are rare and serialised on this object.
 *
 * <p>Owners are compared with {@link Object#equals}.
 */
public final class AllowedIps<T> {

  private static final int IPV4_BYTES = 4;
  private static final int IPV6_BYTES = 16;
  private static final int IPV4_BITS = IPV4_BYTES * Byte.SIZE;
  private static final int IPV6_BITS = IPV6_BYTES * Byte.SIZE;

  private static final int IPV4_HEADER_MIN = 20;
  private static final int IPV4_SOURCE = 12;
  private static final int IPV4_DESTINATION = 16;
  private static final int IPV6_HEADER = 40;
  private static final int IPV6_SOURCE = 8;
  private static final int IPV6_DESTINATION = 24;

  private static final VarHandle INT_BE =
      MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);
  private static final VarHandle LONG_BE =
      MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);

  // Keys are held as 128 bits in two longs, most significant first. IPv4 addresses sit in
  // the top 32 bits of hi, so both families share one trie implementation.
  private volatile Node<T> ipv4;
  private volatile Node<T> ipv6;

  /**
   * Routes {@code address/prefixLength} to {@code value}, replacing any previous owner of exactly
   * that prefix. Host bits beyond the prefix are ignored.
   */
  public void insert(byte[] address, int prefixLength, T value) {
    Objects.requireNonNull(value, "value");
    int bits = checkPrefix(address, prefixLength);
    long hi = high(address) & maskHigh(prefixLength);
    long lo = low(address) & maskLow(prefixLength);
    synchronized (this) {
      if (bits == IPV4_BITS) {
        ipv4 = insert(ipv4, hi, lo, prefixLength, value);
      } else {
        ipv6 = insert(ipv6, hi, lo, prefixLength, value);
      }
    }
  }

  /** Same as {@link #insert(byte[], int, Object)} for a parsed prefix. */
  public void insert(Prefix prefix, T value) {
    insert(prefix.address().getAddress(), prefix.length(), value);
  }

  /**
   * Removes {@code address/prefixLength} if, and only if, {@code value} owns it, so a stale removal
   * cannot take a prefix that has since moved to another peer. Returns whether anything was
   * removed.
   */
  public boolean remove(byte[] address, int prefixLength, T value) {
    Objects.requireNonNull(value, "value");
    int bits = checkPrefix(address, prefixLength);
    long hi = high(address) & maskHigh(prefixLength);
    long lo = low(address) & maskLow(prefixLength);
    synchronized (this) {
      // remove() returns the same root when nothing matched.
      if (bits == IPV4_BITS) {
        Node<T> before = ipv4;
        ipv4 = remove(before, hi, lo, prefixLength, value);
        return ipv4 != before;
      }
      Node<T> before = ipv6;
      ipv6 = remove(before, hi, lo, prefixLength, value);
      return ipv6 != before;
    }
  }

  /** Same as {@link #remove(byte[], int, Object)} for a parsed prefix. */
  public boolean remove(Prefix prefix, T value) {
    return remove(prefix.address().getAddress(), prefix.length(), value);
  }

  /** Drops every prefix owned by {@code value}, e.g. when the peer is removed. */
  public synchronized void removeAll(T value) {
    Objects.requireNonNull(value, "value");
    ipv4 = removeAll(ipv4, value);
    ipv6 = removeAll(ipv6, value);
  }

  /** Prefixes owned by {@code value}: IPv4 before IPv6, then by address, then by length. */
  public List<Prefix> prefixesOf(T value) {
    Objects.requireNonNull(value, "value");
    List<Prefix> out = new ArrayList<>();
    collect(ipv4, value, IPV4_BYTES, out);
    collect(ipv6, value, IPV6_BYTES, out);
    return out;
  }

  /** Removes every prefix. */
  public synchronized void clear() {
    ipv4 = null;
    ipv6 = null;
  }

  /**
   * Finds the owner of the destination ({@code source == false}) or source address of the IP packet
   * in {@code packet[offset, offset + length)}. Only the version nibble and the address field are
   * read. Returns null when nothing matches or the packet is not IPv4 or IPv6 or is too short to
   * hold the address; never throws for bad input. Allocation-free.
   */
  public T lookup(byte[] packet, int offset, int length, boolean source) {
    if (offset < 0 || length < 1 || offset > packet.length - length) {
      return null;
    }
    int version = (packet[offset] & 0xff) >>> 4;
    if (version == 4) {
      if (length < IPV4_HEADER_MIN) {
        return null;
      }
      int at = offset + (source ? IPV4_SOURCE : IPV4_DESTINATION);
      return find(ipv4, (long) (int) INT_BE.get(packet, at) << 32, 0);
    }
    if (version == 6) {
      if (length < IPV6_HEADER) {
        return null;
      }
      int at = offset + (source ? IPV6_SOURCE : IPV6_DESTINATION);
      return find(ipv6, (long) LONG_BE.get(packet, at), (long) LONG_BE.get(packet, at + 8));
    }
    return null;
  }

  /**
   * As {@link #lookup(byte[], int, int, boolean)} for the packet starting at absolute index {@code
   * offset} of {@code packet} and ending at its limit. Position, limit and byte order are left
   * untouched.
   */
  public T lookup(ByteBuffer packet, int offset, boolean source) {
    int limit = packet.limit();
    if (offset < 0 || offset >= limit) {
      return null;
    }
    int length = limit - offset;
    int version = (packet.get(offset) & 0xff) >>> 4;
    if (version == 4) {
      if (length < IPV4_HEADER_MIN) {
        return null;
      }
      int at = offset + (source ? IPV4_SOURCE : IPV4_DESTINATION);
      return find(ipv4, (long) intBigEndian(packet, at) << 32, 0);
    }
    if (version == 6) {
      if (length < IPV6_HEADER) {
        return null;
      }
      int at = offset + (source ? IPV6_SOURCE : IPV6_DESTINATION);
      return find(ipv6, longBigEndian(packet, at), longBigEndian(packet, at + 8));
    }
    return null;
  }

  /** Owner of one address (4 or 16 bytes), or null. */
  public T lookupAddress(byte[] address) {
    int bits = familyBits(address);
    return find(bits == IPV4_BITS ? ipv4 : ipv6, high(address), low(address));
  }

  // ---- trie ----

  private static final class Node<T> {
    final long hi;
    final long lo;
    final long maskHi;
    final long maskLo;
    final int bits;
    final T value; // null for a branch node, which always has both children
    final Node<T> zero;
    final Node<T> one;

    Node(long hi, long lo, int bits, T value, Node<T> zero, Node<T> one) {
      this.hi = hi;
      this.lo = lo;
      this.maskHi = maskHigh(bits);
      this.maskLo = maskLow(bits);
      this.bits = bits;
      this.value = value;
      this.zero = zero;
      this.one = one;
    }

    Node<T> with(T value, Node<T> zero, Node<T> one) {
      return new Node<>(hi, lo, bits, value, zero, one);
    }

    boolean covers(long keyHi, long keyLo) {
      return ((keyHi ^ hi) & maskHi) == 0 && ((keyLo ^ lo) & maskLo) == 0;
    }
  }

  private static <T> T find(Node<T> node, long hi, long lo) {
    T best = null;
    while (node != null && node.covers(hi, lo)) {
      if (node.value != null) {
        best = node.value;
      }
      // Full-length nodes have no children, so bitAt's value there does not matter.
      node = bitAt(hi, lo, node.bits) == 0 ? node.zero : node.one;
    }
    return best;
  }

  private static <T> Node<T> insert(Node<T> node, long hi, long lo, int bits, T value) {
    if (node == null) {
      return new Node<>(hi, lo, bits, value, null, null);
    }
    int common = Math.min(commonBits(node.hi, node.lo, hi, lo), Math.min(node.bits, bits));
    if (common == node.bits && common == bits) {
      return node.with(value, node.zero, node.one);
    }
    if (common == node.bits) { // node is a shorter prefix of the key: descend
      if (bitAt(hi, lo, node.bits) == 0) {
        return node.with(node.value, insert(node.zero, hi, lo, bits, value), node.one);
      }
      return node.with(node.value, node.zero, insert(node.one, hi, lo, bits, value));
    }
    if (common == bits) { // the key is a shorter prefix of node: it goes above
      return bitAt(node.hi, node.lo, bits) == 0
          ? new Node<>(hi, lo, bits, value, node, null)
          : new Node<>(hi, lo, bits, value, null, node);
    }
    // The two diverge at bit `common`: join them under a branch node.
    Node<T> leaf = new Node<>(hi, lo, bits, value, null, null);
    long branchHi = hi & maskHigh(common);
    long branchLo = lo & maskLow(common);
    return bitAt(hi, lo, common) == 0
        ? new Node<>(branchHi, branchLo, common, null, leaf, node)
        : new Node<>(branchHi, branchLo, common, null, node, leaf);
  }

  private static <T> Node<T> remove(Node<T> node, long hi, long lo, int bits, T value) {
    if (node == null || node.bits > bits || !node.covers(hi, lo)) {
      return node;
    }
    if (node.bits == bits) {
      return value.equals(node.value) ? compact(node, null, node.zero, node.one) : node;
    }
    if (bitAt(hi, lo, node.bits) == 0) {
      Node<T> zero = remove(node.zero, hi, lo, bits, value);
      return zero == node.zero ? node : compact(node, node.value, zero, node.one);
    }
    Node<T> one = remove(node.one, hi, lo, bits, value);
    return one == node.one ? node : compact(node, node.value, node.zero, one);
  }

  private static <T> Node<T> removeAll(Node<T> node, T value) {
    if (node == null) {
      return null;
    }
    Node<T> zero = removeAll(node.zero, value);
    Node<T> one = removeAll(node.one, value);
    T kept = value.equals(node.value) ? null : node.value;
    if (zero == node.zero && one == node.one && kept == node.value) {
      return node;
    }
    return compact(node, kept, zero, one);
  }

  /** Rebuilds node, dropping it if it would be a valueless node with fewer than two children. */
  private static <T> Node<T> compact(Node<T> node, T value, Node<T> zero, Node<T> one) {
    if (value == null) {
      if (zero == null) {
        return one;
      }
      if (one == null) {
        return zero;
      }
    }
    return node.with(value, zero, one);
  }

  private static <T> void collect(Node<T> node, T value, int addressBytes, List<Prefix> out) {
    if (node == null) {
      return;
    }
    // Pre-order with the zero side first yields address order, shorter prefixes first.
    if (value.equals(node.value)) {
      out.add(new Prefix(toInetAddress(toBytes(node.hi, node.lo, addressBytes)), node.bits));
    }
    collect(node.zero, value, addressBytes, out);
    collect(node.one, value, addressBytes, out);
  }

  // ---- bit helpers ----

  /** Bit {@code index} of the 128-bit key, counting from the most significant. */
  private static int bitAt(long hi, long lo, int index) {
    return (int) (index < Long.SIZE ? hi >>> (63 - index) : lo >>> (127 - index)) & 1;
  }

  private static int commonBits(long hi1, long lo1, long hi2, long lo2) {
    long diff = hi1 ^ hi2;
    return diff != 0
        ? Long.numberOfLeadingZeros(diff)
        : Long.SIZE + Long.numberOfLeadingZeros(lo1 ^ lo2);
  }

  private static long maskHigh(int bits) {
    if (bits >= Long.SIZE) {
      return -1L;
    }
    return bits == 0 ? 0 : -1L << (Long.SIZE - bits); // shifts are mod 64 in Java
  }

  private static long maskLow(int bits) {
    if (bits <= Long.SIZE) {
      return 0;
    }
    return bits == 2 * Long.SIZE ? -1L : -1L << (2 * Long.SIZE - bits);
  }

  private static long high(byte[] address) {
    return address.length == IPV4_BYTES
        ? (long) (int) INT_BE.get(address, 0) << 32
        : (long) LONG_BE.get(address, 0);
  }

  private static long low(byte[] address) {
    return address.length == IPV4_BYTES ? 0 : (long) LONG_BE.get(address, 8);
  }

  private static int intBigEndian(ByteBuffer buffer, int index) {
    int v = buffer.getInt(index);
    return buffer.order() == ByteOrder.BIG_ENDIAN ? v : Integer.reverseBytes(v);
  }

  private static long longBigEndian(ByteBuffer buffer, int index) {
    long v = buffer.getLong(index);
    return buffer.order() == ByteOrder.BIG_ENDIAN ? v : Long.reverseBytes(v);
  }

  private static byte[] toBytes(long hi, long lo, int addressBytes) {
    byte[] out = new byte[addressBytes];
    if (addressBytes == IPV4_BYTES) {
      INT_BE.set(out, 0, (int) (hi >>> 32));
    } else {
      LONG_BE.set(out, 0, hi);
      LONG_BE.set(out, 8, lo);
    }
    return out;
  }

  private static int familyBits(byte[] address) {
    if (address.length != IPV4_BYTES && address.length != IPV6_BYTES) {
      throw new IllegalArgumentException("address must be 4 or 16 bytes, got " + address.length);
    }
    return address.length * Byte.SIZE;
  }

  private static int checkPrefix(byte[] address, int prefixLength) {
    int bits = familyBits(address);
    if (prefixLength < 0 || prefixLength > bits) {
      throw new IllegalArgumentException(
          "prefix length " + prefixLength + " out of range 0-" + bits);
    }
    return bits;
  }

  /** Keeps 16-byte addresses IPv6 even when IPv4-mapped (InetAddress would fold them). */
  private static InetAddress toInetAddress(byte[] raw) {
    try {
      return raw.length == IPV4_BYTES
          ? InetAddress.getByAddress(raw)
          : Inet6Address.getByAddress(null, raw, -1);
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException("address must be 4 or 16 bytes", e);
    }
  }

  // ---- prefixes ----

  /**
   * An IP prefix such as {@code 10.0.0.0/8} or {@code fd00::/64}. The address is stored with its
   * host bits cleared and without any IPv6 scope, so equal networks compare equal.
   */
  public record Prefix(InetAddress address, int length) {

    public Prefix {
      Objects.requireNonNull(address, "address");
      byte[] raw = address.getAddress();
      int bits = raw.length * Byte.SIZE;
      if (length < 0 || length > bits) {
        throw new IllegalArgumentException("prefix length " + length + " out of range 0-" + bits);
      }
      for (int i = 0; i < raw.length; i++) {
        int keep = Math.clamp(length - i * Byte.SIZE, 0, Byte.SIZE);
        raw[i] &= (byte) (0xff00 >>> keep);
      }
      address = toInetAddress(raw);
    }

    /**
     * Parses {@code address/length}; a bare address is a host route (/32 or /128). Accepts only
     * numeric literals (no DNS), dotted-quad IPv4 and RFC 4291 IPv6 without zone. Host bits are
     * cleared. Surrounding whitespace is ignored.
     *
     * @throws IllegalArgumentException naming the input and what is wrong with it
     */
    public static Prefix parse(String text) {
      Objects.requireNonNull(text, "text");
      String s = text.strip();
      int slash = s.indexOf('/');
      byte[] raw = parseAddress(slash < 0 ? s : s.substring(0, slash), text);
      int bits = raw.length * Byte.SIZE;
      int length = slash < 0 ? bits : parseLength(s.substring(slash + 1), bits, text);
      return new Prefix(toInetAddress(raw), length);
    }

    @Override
    public String toString() {
      return format(address.getAddress()) + "/" + length;
    }

    private static byte[] parseAddress(String s, String input) {
      if (s.isEmpty()) {
        throw invalid(input, "missing address");
      }
      if (s.indexOf(':') < 0) {
        return parseIpv4(s, input);
      }
      if (s.indexOf('%') >= 0 || s.indexOf('[') >= 0) {
        throw invalid(input, "IPv6 zone IDs and brackets are not allowed");
      }
      byte[] raw;
      try {
        raw = Inet6Address.ofLiteral(s).getAddress();
      } catch (IllegalArgumentException e) {
        throw invalid(input, "\"" + s + "\" is not an IPv6 address");
      }
      if (raw.length == IPV4_BYTES) { // ofLiteral turns ::ffff:a.b.c.d into IPv4
        byte[] mapped = new byte[IPV6_BYTES];
        mapped[10] = (byte) 0xff;
        mapped[11] = (byte) 0xff;
        System.arraycopy(raw, 0, mapped, 12, IPV4_BYTES);
        raw = mapped;
      }
      return raw;
    }

    private static byte[] parseIpv4(String s, String input) {
      String[] parts = s.split("\\.", -1);
      if (parts.length != IPV4_BYTES) {
        throw invalid(input, "\"" + s + "\" is not a dotted-quad IPv4 address");
      }
      byte[] raw = new byte[IPV4_BYTES];
      for (int i = 0; i < IPV4_BYTES; i++) {
        String p = parts[i];
        // No leading zeros: some parsers read them as octal.
        if (p.isEmpty()
            || p.length() > 3
            || !allDigits(p)
            || (p.length() > 1 && p.charAt(0) == '0')
            || Integer.parseInt(p) > 255) {
          throw invalid(input, "\"" + s + "\" is not a dotted-quad IPv4 address");
        }
        raw[i] = (byte) Integer.parseInt(p);
      }
      return raw;
    }

    private static int parseLength(String s, int bits, String input) {
      if (s.isEmpty()) {
        throw invalid(input, "missing prefix length after '/'");
      }
      if (s.length() > 3 || !allDigits(s) || Integer.parseInt(s) > bits) {
        throw invalid(input, "prefix length \"" + s + "\" is not in range 0-" + bits);
      }
      return Integer.parseInt(s);
    }

    private static boolean allDigits(String s) {
      for (int i = 0; i < s.length(); i++) {
        char c = s.charAt(i);
        if (c < '0' || c > '9') {
          return false;
        }
      }
      return true;
    }

    private static IllegalArgumentException invalid(String input, String reason) {
      return new IllegalArgumentException("invalid IP prefix \"" + input + "\": " + reason);
    }

    /** Dotted quad, or RFC 5952 IPv6: lowercase, longest zero run (2+ groups) as "::". */
    private static String format(byte[] raw) {
      if (raw.length == IPV4_BYTES) {
        return dottedQuad(raw, 0);
      }
      if (isIpv4Mapped(raw)) {
        return "::ffff:" + dottedQuad(raw, 12);
      }
      int[] groups = new int[8];
      for (int i = 0; i < groups.length; i++) {
        groups[i] = ((raw[2 * i] & 0xff) << 8) | (raw[2 * i + 1] & 0xff);
      }
      int bestStart = -1;
      int bestLength = 1; // a single zero group is not compressed
      for (int i = 0; i < groups.length; ) {
        if (groups[i] != 0) {
          i++;
          continue;
        }
        int j = i;
        while (j < groups.length && groups[j] == 0) {
          j++;
        }
        if (j - i > bestLength) {
          bestStart = i;
          bestLength = j - i;
        }
        i = j;
      }
      StringBuilder sb = new StringBuilder();
      for (int i = 0; i < groups.length; i++) {
        if (i == bestStart) {
          sb.append("::");
          i += bestLength - 1;
          continue;
        }
        if (!sb.isEmpty() && sb.charAt(sb.length() - 1) != ':') {
          sb.append(':');
        }
        sb.append(Integer.toHexString(groups[i]));
      }
      return sb.toString();
    }

    private static boolean isIpv4Mapped(byte[] raw) {
      for (int i = 0; i < 10; i++) {
        if (raw[i] != 0) {
          return false;
        }
      }
      return raw[10] == (byte) 0xff && raw[11] == (byte) 0xff;
    }

    private static String dottedQuad(byte[] raw, int from) {
      return (raw[from] & 0xff)
          + "."
          + (raw[from + 1] & 0xff)
          + "."
          + (raw[from + 2] & 0xff)
          + "."
          + (raw[from + 3] & 0xff);
    }
  }
}
