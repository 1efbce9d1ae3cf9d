package dev.trellis.control.policy;

import java.util.Set;

/**
 * One entry of a rule's {@code src} or of the host part of a {@code dst}: what it matches. {@link
 * Self} is special: it matches relative to the source (the same user's untagged nodes) and is
 * decided by {@link Acl}.
 */
sealed interface Selector {
  /** As written in the policy. */
  String text();

  boolean matches(Principal p);

  /** {@code *}: every node and every address. */
  record Any(String text) implements Selector {
    public boolean matches(Principal p) {
      return true;
    }
  }

  /** {@code name@}: the user's untagged nodes. */
  record User(String text, String name) implements Selector {
    public boolean matches(Principal p) {
      return !p.tagged() && name.equals(p.user());
    }
  }

  /** {@code group:x}: its users' untagged nodes. */
  record Group(String text, Set<String> users) implements Selector {
    public boolean matches(Principal p) {
      return !p.tagged() && p.user() != null && users.contains(p.user());
    }
  }

  /** {@code tag:x}: nodes with the tag. */
  record Tag(String text) implements Selector {
    public boolean matches(Principal p) {
      return p.tags().contains(text);
    }
  }

  /** {@code autogroup:member}: untagged nodes. */
  record Member(String text) implements Selector {
    public boolean matches(Principal p) {
      return !p.tagged() && p.user() != null;
    }
  }

  /** {@code autogroup:tagged}: tagged nodes. */
  record Tagged(String text) implements Selector {
    public boolean matches(Principal p) {
      return p.tagged();
    }
  }

  /** {@code autogroup:self}, only as a destination: the source's user's untagged nodes. */
  record Self(String text) implements Selector {
    public boolean matches(Principal p) {
      return false; // needs the source: see Acl
    }

    static boolean matches(Principal src, Principal dst) {
      return !src.tagged() && !dst.tagged() && src.user() != null && src.user().equals(dst.user());
    }
  }

  /** An address, a prefix, or a {@code hosts} name for one: whatever has an address inside. */
  record Prefix(String text, Cidr cidr) implements Selector {
    public boolean matches(Principal p) {
      for (byte[] a : p.addresses()) {
        if (cidr.contains(a)) return true;
      }
      return false;
    }
  }
}
