package dev.trellis.system.netns;

import java.util.HashMap;
import java.util.Map;

/**
 * Two namespaces A and B joined by a veth pair (the "underlay", in the 198.18.0.0/15 benchmark
 * range and a private fd00: ULA prefix), each running one WireGuard interface peered with the other
 * (the "overlay", 100.64.0.0/10 and fd7a:115c:a1e0::/48). Nothing leaves the namespaces.
 */
public final class WgPair {
  public static final String UNDERLAY_DEV = "uplink";
  public static final String A_UNDERLAY4 = "198.18.0.1";
  public static final String B_UNDERLAY4 = "198.18.0.2";

  /** Where a roaming side's underlay address moves to (same subnet). */
  public static final String UNDERLAY4_MOVED = "198.18.0.3";

  public static final int UNDERLAY4_PREFIX = 24;
  public static final String A_UNDERLAY6 = "fd00:7472:7400::1";
  public static final String B_UNDERLAY6 = "fd00:7472:7400::2";
  public static final int UNDERLAY6_PREFIX = 64;
  public static final String A_OVERLAY4 = "100.64.0.1";
  public static final String B_OVERLAY4 = "100.64.0.2";
  public static final String A_OVERLAY6 = "fd7a:115c:a1e0::1";
  public static final String B_OVERLAY6 = "fd7a:115c:a1e0::2";
  public static final int A_PORT = 51820;
  public static final int B_PORT = 51821;

  /**
   * Knobs for the peer configuration; the defaults give a working pair without keepalives or PSK.
   */
  public static final class Options {
    final Map<String, String> envA = new HashMap<>();
    final Map<String, String> envB = new HashMap<>();
    boolean presharedKey;
    boolean mismatchedPresharedKey;
    boolean wrongPublicKeyOnA;
    Integer keepaliveA;
    boolean ipv6Underlay;

    public static Options defaults() {
      return new Options();
    }

    /** Extra environment for side A's daemon. */
    public Options envA(String k, String v) {
      envA.put(k, v);
      return this;
    }

    public Options envB(String k, String v) {
      envB.put(k, v);
      return this;
    }

    /** Both sides share one preshared key. */
    public Options presharedKey() {
      presharedKey = true;
      return this;
    }

    /** Each side gets a different preshared key: handshakes must fail. */
    public Options mismatchedPresharedKey() {
      mismatchedPresharedKey = true;
      return this;
    }

    /** A is configured with a random public key for B: handshakes must fail. */
    public Options wrongPublicKeyOnA() {
      wrongPublicKeyOnA = true;
      return this;
    }

    public Options keepaliveA(int seconds) {
      keepaliveA = seconds;
      return this;
    }

    /** Endpoints use the IPv6 underlay addresses. */
    public Options ipv6Underlay() {
      ipv6Underlay = true;
      return this;
    }
  }

  private final ImplPair impls;
  private final NetworkNamespace nsA;
  private final NetworkNamespace nsB;
  private final WgKeys keysA;
  private final WgKeys keysB;
  private final String peerKeyOnA;
  private final WgKeys.Psk psk;
  private final WgInterface a;
  private final WgInterface b;

  private WgPair(Netns bed, ImplPair impls, Options o) {
    this.impls = impls;
    NetworkNamespace[] underlay = underlay(bed);
    nsA = underlay[0];
    nsB = underlay[1];
    keysA = WgKeys.generate(bed);
    keysB = WgKeys.generate(bed);
    peerKeyOnA = o.wrongPublicKeyOnA ? WgKeys.generate(bed).publicKey() : keysB.publicKey();
    psk = o.presharedKey || o.mismatchedPresharedKey ? WgKeys.generatePsk(bed) : null;
    WgKeys.Psk pskB = o.mismatchedPresharedKey ? WgKeys.generatePsk(bed) : psk;

    a = WgInterface.start(nsA, impls.a(), o.envA);
    b = WgInterface.start(nsB, impls.b(), o.envB);
    String epA = o.ipv6Underlay ? "[" + A_UNDERLAY6 + "]:" + A_PORT : A_UNDERLAY4 + ":" + A_PORT;
    String epB = o.ipv6Underlay ? "[" + B_UNDERLAY6 + "]:" + B_PORT : B_UNDERLAY4 + ":" + B_PORT;

    a.configure(keysA, A_PORT)
        .addPeer(
            WgInterface.Peer.of(peerKeyOnA, B_OVERLAY4 + "/32", B_OVERLAY6 + "/128")
                .endpoint(epB)
                .presharedKey(psk == null ? null : psk.file())
                .keepalive(o.keepaliveA));
    b.configure(keysB, B_PORT)
        .addPeer(
            WgInterface.Peer.of(keysA.publicKey(), A_OVERLAY4 + "/32", A_OVERLAY6 + "/128")
                .endpoint(epA)
                .presharedKey(pskB == null ? null : pskB.file()));
    a.address(A_OVERLAY4 + "/24").address(A_OVERLAY6 + "/64").up();
    b.address(B_OVERLAY4 + "/24").address(B_OVERLAY6 + "/64").up();
  }

  /** A fresh pair with the given options. */
  public static WgPair create(Netns bed, ImplPair impls, Options options) {
    return new WgPair(bed, impls, options);
  }

  public static WgPair create(Netns bed, ImplPair impls) {
    return create(bed, impls, Options.defaults());
  }

  /**
   * Namespaces "a" and "b" joined by veth {@value #UNDERLAY_DEV} with the A_/B_UNDERLAY addresses.
   */
  public static NetworkNamespace[] underlay(Netns bed) {
    NetworkNamespace nsA = bed.newNamespace("a");
    NetworkNamespace nsB = bed.newNamespace("b");
    bed.veth(nsA, UNDERLAY_DEV, nsB, UNDERLAY_DEV);
    Netns.addAddress(nsA, UNDERLAY_DEV, A_UNDERLAY4 + "/" + UNDERLAY4_PREFIX);
    Netns.addAddress(nsB, UNDERLAY_DEV, B_UNDERLAY4 + "/" + UNDERLAY4_PREFIX);
    Netns.addAddress(nsA, UNDERLAY_DEV, A_UNDERLAY6 + "/" + UNDERLAY6_PREFIX);
    Netns.addAddress(nsB, UNDERLAY_DEV, B_UNDERLAY6 + "/" + UNDERLAY6_PREFIX);
    return new NetworkNamespace[] {nsA, nsB};
  }

  public ImplPair impls() {
    return impls;
  }

  public NetworkNamespace nsA() {
    return nsA;
  }

  public NetworkNamespace nsB() {
    return nsB;
  }

  public WgInterface a() {
    return a;
  }

  public WgInterface b() {
    return b;
  }

  public WgKeys keysA() {
    return keysA;
  }

  public WgKeys keysB() {
    return keysB;
  }

  /**
   * The public key A has configured for its peer (B's, unless {@link Options#wrongPublicKeyOnA()}).
   */
  public String peerKeyOnA() {
    return peerKeyOnA;
  }

  /** The preshared key A uses, or null. */
  public WgKeys.Psk psk() {
    return psk;
  }

  /** A's latest handshake with B (Unix seconds; 0 = never). */
  public long handshakeOnA() {
    return a.latestHandshake(peerKeyOnA);
  }

  /** B's latest handshake with A. */
  public long handshakeOnB() {
    return b.latestHandshake(keysA.publicKey());
  }

  public WgInterface.Transfer transferOnA() {
    return a.transfer(peerKeyOnA);
  }

  public WgInterface.Transfer transferOnB() {
    return b.transfer(keysA.publicKey());
  }

  /** One of the two sides, for tests that run the same steps from either end. */
  public enum Side {
    A,
    B;

    public Side other() {
      return this == A ? B : A;
    }
  }

  public NetworkNamespace ns(Side s) {
    return s == Side.A ? nsA : nsB;
  }

  public WgInterface wg(Side s) {
    return s == Side.A ? a : b;
  }

  public WgKeys keys(Side s) {
    return s == Side.A ? keysA : keysB;
  }

  /** {@code wg show transfer} on side {@code s} for its peer. */
  public WgInterface.Transfer transfer(Side s) {
    return s == Side.A ? transferOnA() : transferOnB();
  }

  public static String overlay4(Side s) {
    return s == Side.A ? A_OVERLAY4 : B_OVERLAY4;
  }

  public static String underlay4(Side s) {
    return s == Side.A ? A_UNDERLAY4 : B_UNDERLAY4;
  }

  public static int port(Side s) {
    return s == Side.A ? A_PORT : B_PORT;
  }

  @Override
  public String toString() {
    return impls + " [" + a.name() + "@" + nsA + ", " + b.name() + "@" + nsB + "]";
  }
}
