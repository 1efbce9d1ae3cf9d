package dev.trellis.dataplane.offload;

import static dev.trellis.dataplane.offload.Checksum.getInt;
import static dev.trellis.dataplane.offload.Checksum.getShort;
import static dev.trellis.dataplane.offload.Checksum.putShort;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Joins the TCP segments of one flow that arrive in one batch into a single large packet for a TUN
 * with offloads (receive offload, as GRO does on a NIC), so the kernel's TCP stack handles one
 * packet where the peer sent dozens.
 *
 * <p>A segment joins the flow's open packet only when it continues it exactly: same addresses and
 * ports, same IP fields (TOS, TTL/hop limit, DF; no IPv4 options, no fragments), same TCP header
 * length, options, ACK number and flags (ACK, with PSH allowed last), its sequence number next, and
 * the previous segment full-sized. A shorter segment or PSH ends the packet. Everything else (other
 * protocols, SYN/FIN/RST/URG/ECE/CWR, empty segments) is written as it came. Packets leave in the
 * order their first segment arrived, so one flow's order is kept.
 *
 * <p>The joined packet carries only the pseudo-header sum in its TCP checksum and {@code
 * NEEDS_CSUM} in its virtio-net header, as a NIC's GRO hands it over: the payload was authenticated
 * by WireGuard, so the kernel need not verify it again.
 *
 * <p>Owned by one thread (an inbound path); the packets it is given must stay in place until {@link
 * #flush}.
 */
public final class GroCoalescer {
  /** Where a packet goes: a TUN write of a virtio-net header and the packet. */
  @FunctionalInterface
  public interface Sink {
    boolean write(ByteBuffer headerAndPacket) throws IOException;
  }

  private static final int MAX_IP_PACKET = 65535;
  private static final int IPV4_HEADER = 20;
  private static final int IPV6_HEADER = 40;
  private static final int TCP_MIN_HEADER = 20;
  private static final int TCP_PSH = 0x08;
  private static final int TCP_ACK = 0x10;
  private static final int TCP_JOINABLE = TCP_ACK | TCP_PSH;

  private final ByteBuffer out =
      ByteBuffer.allocateDirect(VirtioNetHeader.LENGTH + MAX_IP_PACKET + 64);
  private final byte[] header = new byte[VirtioNetHeader.LENGTH + 120];

  private byte[] source;
  // per packet
  private int[] packetOffset = new int[128];
  private int[] packetLength = new int[128];
  private int[] nextPacket = new int[128];
  private int packets;
  // per item (an output packet)
  private int[] head = new int[64];
  private int[] tail = new int[64];
  private int[] segments = new int[64];
  private int[] payloadTotal = new int[64];
  private int[] gsoSize = new int[64];
  private int[] headerLength = new int[64];
  private int[] nextSeq = new int[64];
  private boolean[] open = new boolean[64];
  private boolean[] psh = new boolean[64];
  private int items;

  /** Adds the IP packet {@code buf[off, off+len)} (the same {@code buf} for a whole batch). */
  public void add(byte[] buf, int off, int len) {
    if (source != buf) {
      if (packets > 0) {
        throw new IllegalStateException("one buffer per batch");
      }
      source = buf;
    }
    int p = newPacket(off, len);
    int tcpHeaders = joinableHeaders(buf, off, len);
    if (tcpHeaders < 0) {
      newItem(p, false, 0, 0, 0);
      return;
    }
    int payload = len - tcpHeaders;
    int ipHeader = (buf[off] & 0xf0) == 0x60 ? IPV6_HEADER : IPV4_HEADER;
    int seq = getInt(buf, off + ipHeader + 4);
    boolean push = (buf[off + ipHeader + 13] & TCP_PSH) != 0;
    int it = openItemOf(buf, off, ipHeader);
    if (it >= 0) {
      if (canJoin(it, buf, off, len, ipHeader, tcpHeaders, payload, seq)) {
        nextPacket[tail[it]] = p;
        tail[it] = p;
        segments[it]++;
        payloadTotal[it] += payload;
        nextSeq[it] = seq + payload;
        if (push || payload < gsoSize[it]) {
          psh[it] |= push;
          open[it] = false;
        }
        return;
      }
      open[it] = false;
    }
    int item = newItem(p, !push, tcpHeaders, payload, seq + payload);
    psh[item] = push;
  }

  /** Writes every packet built since the last flush, in order, and forgets them. */
  public void flush(Sink sink) throws IOException {
    try {
      for (int it = 0; it < items; it++) {
        write(it, sink);
      }
    } finally {
      items = 0;
      packets = 0;
      source = null;
    }
  }

  private void write(int it, GroCoalescer.Sink sink) throws IOException {
    int first = head[it];
    int off = packetOffset[first];
    out.clear();
    if (segments[it] == 1) {
      VirtioNetHeader.none(header, 0);
      out.put(header, 0, VirtioNetHeader.LENGTH);
      out.put(source, off, packetLength[first]);
      sink.write(out.flip());
      return;
    }
    int headers = headerLength[it];
    boolean v6 = (source[off] & 0xf0) == 0x60;
    int ipHeader = v6 ? IPV6_HEADER : IPV4_HEADER;
    int h = VirtioNetHeader.LENGTH;
    System.arraycopy(source, off, header, h, headers);
    int total = headers + payloadTotal[it];
    if (v6) {
      putShort(header, h + 4, total - IPV6_HEADER);
    } else {
      putShort(header, h + 2, total);
      putShort(header, h + 10, 0);
      putShort(header, h + 10, Checksum.ipv4Header(header, h, IPV4_HEADER));
    }
    int tcp = h + ipHeader;
    if (psh[it]) {
      header[tcp + 13] |= TCP_PSH;
    }
    int l4Length = total - ipHeader;
    putShort(
        header,
        tcp + 16,
        Checksum.fold(Checksum.pseudoHeader(header, h, v6, Checksum.PROTO_TCP, l4Length)));
    VirtioNetHeader.write(
        header,
        0,
        VirtioNetHeader.F_NEEDS_CSUM,
        v6 ? VirtioNetHeader.GSO_TCPV6 : VirtioNetHeader.GSO_TCPV4,
        headers,
        gsoSize[it],
        ipHeader,
        16);
    out.put(header, 0, h + headers);
    for (int p = first; ; p = nextPacket[p]) {
      out.put(source, packetOffset[p] + headers, packetLength[p] - headers);
      if (p == tail[it]) {
        break;
      }
    }
    sink.write(out.flip());
  }

  /** IP + TCP header length of a segment that may be joined with others, or -1. */
  private static int joinableHeaders(byte[] b, int off, int len) {
    int version = (b[off] & 0xff) >>> 4;
    int ipHeader;
    if (version == 4 && len >= IPV4_HEADER + TCP_MIN_HEADER) {
      if ((b[off] & 0x0f) != 5 || (b[off + 9] & 0xff) != Checksum.PROTO_TCP) {
        return -1; // options, or not TCP
      }
      if ((getShort(b, off + 6) & 0x3fff) != 0) {
        return -1; // a fragment (MF set or an offset)
      }
      ipHeader = IPV4_HEADER;
    } else if (version == 6 && len >= IPV6_HEADER + TCP_MIN_HEADER) {
      if ((b[off + 6] & 0xff) != Checksum.PROTO_TCP) {
        return -1;
      }
      ipHeader = IPV6_HEADER;
    } else {
      return -1;
    }
    int tcp = off + ipHeader;
    int tcpHeader = ((b[tcp + 12] & 0xff) >>> 4) * 4;
    int flags = b[tcp + 13] & 0xff;
    int headers = ipHeader + tcpHeader;
    if (tcpHeader < TCP_MIN_HEADER
        || headers >= len
        || (flags & ~TCP_JOINABLE) != 0
        || (flags & TCP_ACK) == 0) {
      return -1; // no payload, or flags that must be seen on their own
    }
    return headers;
  }

  /** The open item of this segment's flow (addresses and ports), or -1. */
  private int openItemOf(byte[] b, int off, int ipHeader) {
    for (int it = items - 1; it >= 0; it--) {
      if (!open[it]) {
        continue;
      }
      int o = packetOffset[head[it]];
      if ((b[o] & 0xf0) != (b[off] & 0xf0)) {
        continue;
      }
      boolean sameFlow =
          ipHeader == IPV6_HEADER
              ? Arrays.equals(b, o + 8, o + 40, b, off + 8, off + 40)
              : Arrays.equals(b, o + 12, o + 20, b, off + 12, off + 20);
      if (sameFlow
          && Arrays.equals(
              b, o + ipHeader, o + ipHeader + 4, b, off + ipHeader, off + ipHeader + 4)) {
        return it;
      }
    }
    return -1;
  }

  private boolean canJoin(
      int it, byte[] b, int off, int len, int ipHeader, int headers, int payload, int seq) {
    int o = packetOffset[head[it]];
    if (headers != headerLength[it] || seq != nextSeq[it] || payload > gsoSize[it]) {
      return false;
    }
    if (headerLength[it] + payloadTotal[it] + payload > MAX_IP_PACKET) {
      return false;
    }
    if (ipHeader == IPV4_HEADER) {
      // TOS, DF and TTL as the first segment's (the id, length and checksum may differ)
      if (b[o + 1] != b[off + 1]
          || (b[o + 6] & 0xe0) != (b[off + 6] & 0xe0)
          || b[o + 8] != b[off + 8]) {
        return false;
      }
    } else if (getInt(b, o) != getInt(b, off) || b[o + 7] != b[off + 7]) {
      return false; // traffic class, flow label, hop limit
    }
    int t = o + ipHeader;
    int u = off + ipHeader;
    return getInt(b, t + 8) == getInt(b, u + 8) // ACK number
        && (b[t + 13] & ~TCP_PSH) == (b[u + 13] & ~TCP_PSH)
        && Arrays.equals(b, t + TCP_MIN_HEADER, o + headers, b, u + TCP_MIN_HEADER, off + headers);
  }

  private int newPacket(int off, int len) {
    if (packets == packetOffset.length) {
      int n = packets * 2;
      packetOffset = Arrays.copyOf(packetOffset, n);
      packetLength = Arrays.copyOf(packetLength, n);
      nextPacket = Arrays.copyOf(nextPacket, n);
    }
    packetOffset[packets] = off;
    packetLength[packets] = len;
    nextPacket[packets] = -1;
    return packets++;
  }

  private int newItem(int p, boolean joinable, int headers, int payload, int next) {
    if (items == head.length) {
      int n = items * 2;
      head = Arrays.copyOf(head, n);
      tail = Arrays.copyOf(tail, n);
      segments = Arrays.copyOf(segments, n);
      payloadTotal = Arrays.copyOf(payloadTotal, n);
      gsoSize = Arrays.copyOf(gsoSize, n);
      headerLength = Arrays.copyOf(headerLength, n);
      nextSeq = Arrays.copyOf(nextSeq, n);
      open = Arrays.copyOf(open, n);
      psh = Arrays.copyOf(psh, n);
    }
    int it = items++;
    head[it] = p;
    tail[it] = p;
    segments[it] = 1;
    payloadTotal[it] = payload;
    gsoSize[it] = payload;
    headerLength[it] = headers;
    nextSeq[it] = next;
    open[it] = joinable;
    psh[it] = false;
    return it;
  }
}
