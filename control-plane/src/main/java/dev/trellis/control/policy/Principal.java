package dev.trellis.control.policy;

import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Who is on one end of a connection, as the policy sees it: a node (its user, its tags, its
 * addresses), or, in a policy's tests and in {@code policy why}, a user, a tag or an address on its
 * own. A tagged node belongs to its tags, not its user (as in Tailscale): user and group selectors
 * match only untagged principals.
 */
public record Principal(String name, String user, Set<String> tags, List<byte[]> addresses) {

  public static Principal node(String hostname, String user, Set<String> tags, String... ips) {
    List<byte[]> addresses = new ArrayList<>();
    for (String ip : ips) {
      if (ip != null) addresses.add(InetAddress.ofLiteral(ip).getAddress());
    }
    return new Principal(hostname, user, tags == null ? Set.of() : tags, addresses);
  }

  static Principal user(String user) {
    return new Principal(user + "@", user, Set.of(), List.of());
  }

  static Principal tag(String tag) {
    return new Principal(tag, null, Set.of(tag), List.of());
  }

  static Principal address(String text, byte[] address) {
    return new Principal(text, null, Set.of(), List.of(address));
  }

  boolean tagged() {
    return !tags.isEmpty();
  }
}
