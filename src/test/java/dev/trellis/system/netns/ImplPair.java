package dev.trellis.system.netns;

import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Side A and side B of a two-node test. The set of implementations taking part can be narrowed with
 * the system property {@code trellis.wg.impls} (or environment variable TRELLIS_WG_IMPLS), e.g.
 * {@code -Dtrellis.wg.impls=WIREGUARD_GO} to run only the wireguard-go control cases.
 */
public record ImplPair(WgImpl a, WgImpl b) {

  public static final List<ImplPair> INTEROP =
      List.of(
          new ImplPair(WgImpl.TRELLIS, WgImpl.WIREGUARD_GO),
          new ImplPair(WgImpl.TRELLIS, WgImpl.TRELLIS),
          new ImplPair(WgImpl.TRELLIS_NO_OFFLOADS, WgImpl.WIREGUARD_GO),
          new ImplPair(WgImpl.WIREGUARD_GO, WgImpl.WIREGUARD_GO));

  /** Offloads on against off: GSO/TSO to a peer without GRO, and back. */
  public static final ImplPair MIXED_OFFLOADS =
      new ImplPair(WgImpl.TRELLIS, WgImpl.TRELLIS_NO_OFFLOADS);

  /** The interop pairs whose implementations are all enabled. */
  public static Stream<ImplPair> selected() {
    Set<WgImpl> enabled = enabledImpls();
    return INTEROP.stream().filter(p -> enabled.contains(p.a) && enabled.contains(p.b));
  }

  /** {@link #selected} and, where both are enabled, {@link #MIXED_OFFLOADS}. */
  public static Stream<ImplPair> selectedWithMixedOffloads() {
    Set<WgImpl> enabled = enabledImpls();
    return Stream.concat(
        selected(),
        Stream.of(MIXED_OFFLOADS).filter(p -> enabled.contains(p.a) && enabled.contains(p.b)));
  }

  /**
   * Implementations enabled for this run (all, unless narrowed by trellis.wg.impls /
   * TRELLIS_WG_IMPLS).
   */
  public static Set<WgImpl> enabledImpls() {
    String spec = System.getProperty("trellis.wg.impls", System.getenv("TRELLIS_WG_IMPLS"));
    if (spec == null || spec.isBlank()) {
      return EnumSet.allOf(WgImpl.class);
    }
    return Arrays.stream(spec.split("[,\\s]+"))
        .filter(s -> !s.isBlank())
        .map(s -> WgImpl.valueOf(s.strip().toUpperCase().replace('-', '_')))
        .collect(Collectors.toCollection(() -> EnumSet.noneOf(WgImpl.class)));
  }

  @Override
  public String toString() {
    return a + "<->" + b;
  }
}
