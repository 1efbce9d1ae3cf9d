package dev.trellis.dataplane.filter;

/** What {@link PacketFilter#decide} says about one inbound packet; every other value drops it. */
public enum Verdict {
  ACCEPT("accept"),
  /** It would open something new (a TCP SYN, a UDP flow, an echo request) and no rule allows it. */
  NO_RULE("no-rule"),
  /** Not a sane IPv4/IPv6 packet, or too short for the header the decision needs. */
  MALFORMED("malformed");

  /** How status output names the reason. */
  public final String label;

  Verdict(String label) {
    this.label = label;
  }
}
