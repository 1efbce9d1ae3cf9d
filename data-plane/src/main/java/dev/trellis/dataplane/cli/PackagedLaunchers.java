package dev.trellis.dataplane.cli;

/**
 * Entry points of the packaged launchers that stand for one subcommand: {@code trellis-agent} and
 * {@code trellis-wg} in the Debian package (scripts/package-deb). A jpackage launcher passes its
 * configured arguments only when it is given none, so the subcommand is fixed here instead.
 */
public final class PackagedLaunchers {
  private PackagedLaunchers() {}

  private static String[] with(String subcommand, String[] args) {
    String[] all = new String[args.length + 1];
    all[0] = subcommand;
    System.arraycopy(args, 0, all, 1, args.length);
    return all;
  }

  /** {@code trellis-agent ARGS} is {@code trellis agent ARGS}. */
  public static final class Agent {
    private Agent() {}

    public static void main(String[] args) {
      TrellisNode.main(with("agent", args));
    }
  }

  /** {@code trellis-wg NAME} is {@code trellis wg NAME} (for WG_QUICK_USERSPACE_IMPLEMENTATION). */
  public static final class Wg {
    private Wg() {}

    public static void main(String[] args) {
      TrellisNode.main(with("wg", args));
    }
  }
}
