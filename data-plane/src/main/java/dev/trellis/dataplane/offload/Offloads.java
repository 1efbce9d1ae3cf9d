package dev.trellis.dataplane.offload;

import java.util.Locale;

/**
 * Which offloads a device may use. Each is tried and falls back by itself where the kernel refuses
 * it; these switches turn one off on purpose (a kernel regression, a comparison):
 *
 * <ul>
 *   <li>{@code tun}: the TUN hands over and takes large TCP/UDP packets with a virtio-net header
 *       (TSO/USO out, coalesced TCP in);
 *   <li>{@code udp-gso}: the segments sealed from one large packet leave in one {@code sendmsg}
 *       ({@code UDP_SEGMENT});
 *   <li>{@code udp-gro}: one {@code recvmsg} takes many datagrams of one sender ({@code UDP_GRO}).
 * </ul>
 *
 * <p>{@code TRELLIS_OFFLOADS} picks them: {@code all} (the default), {@code none}, or a
 * comma-separated list of the names above.
 */
public record Offloads(boolean tun, boolean udpGso, boolean udpGro) {
  public static final String ENV = "TRELLIS_OFFLOADS";
  public static final Offloads ALL = new Offloads(true, true, true);
  public static final Offloads NONE = new Offloads(false, false, false);

  public static Offloads fromEnvironment() {
    return parse(System.getenv(ENV));
  }

  /** Reads the setting; unknown words are refused with the list of known ones. */
  public static Offloads parse(String value) {
    if (value == null || value.isBlank()) {
      return ALL;
    }
    String v = value.trim().toLowerCase(Locale.ROOT);
    if (v.equals("all")) {
      return ALL;
    }
    if (v.equals("none")) {
      return NONE;
    }
    boolean tun = false;
    boolean gso = false;
    boolean gro = false;
    for (String word : v.split(",")) {
      switch (word.trim()) {
        case "tun" -> tun = true;
        case "udp-gso" -> gso = true;
        case "udp-gro" -> gro = true;
        case "" -> {}
        default ->
            throw new IllegalArgumentException(
                ENV
                    + ": unknown offload '"
                    + word.trim()
                    + "' (say all, none, or a list of tun, udp-gso, udp-gro)");
      }
    }
    return new Offloads(tun, gso, gro);
  }

  @Override
  public String toString() {
    if (equals(ALL)) {
      return "all";
    }
    if (equals(NONE)) {
      return "none";
    }
    StringBuilder sb = new StringBuilder();
    if (tun) {
      sb.append("tun,");
    }
    if (udpGso) {
      sb.append("udp-gso,");
    }
    if (udpGro) {
      sb.append("udp-gro,");
    }
    return sb.substring(0, sb.length() - 1);
  }
}
