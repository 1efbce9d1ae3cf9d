package dev.trellis.control.node;

import dev.trellis.persistence.CborSerializable;
import java.time.Instant;
import java.util.Set;

/**
 * A registered node. {@code expiry} null means the node key never expires; {@code expired} means it
 * was expired explicitly; {@code loggedOut} means the node logged out and must register again.
 */
public record NodeRecord(
    long id,
    String machineKey,
    String nodeKey,
    String user,
    String hostname,
    String ipv4,
    String ipv6,
    Set<String> tags,
    boolean ephemeral,
    Instant createdAt,
    Instant expiry,
    boolean expired,
    boolean loggedOut)
    implements CborSerializable {

  /**
   * Whether the node may be on the network at {@code now}: not expired (by flag or time), not
   * logged out.
   */
  public boolean live(Instant now) {
    return !expired && !loggedOut && (expiry == null || now.isBefore(expiry));
  }
}
