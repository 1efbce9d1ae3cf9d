package dev.trellis.control.policy;

import dev.trellis.control.Result;
import dev.trellis.control.Result.Code;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.persistence.CborSerializable;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The admin's questions to a policy: is this file usable ({@code policy check}), which rule lets
 * one host reach another ({@code policy why}), and may a key or node carry these tags.
 */
public final class PolicyAccess {
  private PolicyAccess() {}

  /** A usable policy: how much it holds. */
  public record Checked(int groups, int tagOwners, int hosts, int acls, int tests)
      implements CborSerializable {}

  /**
   * The answer to {@code why}: {@code rule} is the index in {@code acls} (null: none, or no
   * policy), {@code line} where it starts, {@code matched} its dst entry; {@code port} -1 = any.
   */
  public record Answer(
      boolean allowed,
      String src,
      String dst,
      int port,
      String proto,
      Integer rule,
      Integer line,
      String matched,
      String explanation)
      implements CborSerializable {

    /** An answer that names no rule. */
    static Answer without(
        boolean allowed, String src, String dst, int port, String proto, String explanation) {
      return new Answer(allowed, src, dst, port, proto, null, null, null, explanation);
    }
  }

  public static Result<Checked> check(String text) {
    if (text == null || text.isBlank()) return Result.rejected(Code.INVALID, "the policy is empty");
    try {
      Policy p = Policy.parse(text);
      return Result.ok(
          new Checked(
              p.groups().size(),
              p.tagOwners().size(),
              p.hosts().size(),
              p.acls().size(),
              p.tests().size()));
    } catch (PolicyException e) {
      return Result.rejected(Code.INVALID, e.getMessage());
    }
  }

  /**
   * Why (or why not) {@code src} may open {@code proto} to {@code dst}: hosts are node names,
   * overlay addresses, or what a policy test may name (users, tags, hosts, IPs).
   */
  public static Result<Answer> explain(
      PolicyRegistry.Current current,
      List<NodeRecord> nodes,
      String src,
      String dst,
      String proto) {
    int protocol = Protocols.one(proto);
    if (protocol < 0) return Result.rejected(Code.INVALID, "unknown proto \"" + proto + "\"");
    String protoName = Protocols.name(protocol);
    String host = dst;
    int port = -1;
    if (dst.startsWith("[") && dst.contains("]:")) {
      host = dst.substring(1, dst.indexOf(']'));
      port = parsePort(dst.substring(dst.indexOf("]:") + 2));
    } else if (dst.indexOf(':') > 0 && dst.indexOf(':') == dst.lastIndexOf(':')) {
      host = dst.substring(0, dst.indexOf(':'));
      port = parsePort(dst.substring(dst.indexOf(':') + 1));
    }
    if (port == -2) return Result.rejected(Code.INVALID, "bad port in \"" + dst + "\"");
    if (current.text() == null) {
      return Result.ok(
          Answer.without(
              true, src, host, port, protoName, "no policy is set: everything is allowed"));
    }
    try {
      Policy policy = Policy.parse(current.text());
      Names names = policy.names();
      Principal from = resolve(src, nodes, names);
      Principal to = resolve(host, nodes, names);
      Policy.Verdict v = policy.decide(from, to, protocol, port);
      String what =
          from.name() + " -> " + to.name() + (port < 0 ? "" : ":" + port) + "/" + protoName;
      if (!v.allowed()) {
        return Result.ok(
            Answer.without(
                false,
                src,
                host,
                port,
                protoName,
                "denied: no rule of policy version " + current.version() + " allows " + what));
      }
      return Result.ok(
          new Answer(
              true,
              src,
              host,
              port,
              protoName,
              v.acl().index(),
              v.acl().line(),
              v.destination().text(),
              "allowed: "
                  + what
                  + " by acls["
                  + v.acl().index()
                  + "] (line "
                  + v.acl().line()
                  + ") src "
                  + v.acl().src().stream().map(Selector::text).toList()
                  + " dst "
                  + v.destination().text()));
    } catch (PolicyException e) {
      return Result.rejected(Code.INVALID, e.getMessage());
    }
  }

  /** Why {@code tags} may not be used (on a key of {@code user}, or null for a node); null: ok. */
  public static String tagRefusal(PolicyRegistry.Current current, String user, Set<String> tags) {
    if (current.text() == null || tags == null) return null;
    Policy policy;
    try {
      policy = Policy.parse(current.text());
    } catch (PolicyException e) {
      return null; // the registry only keeps usable policies
    }
    for (String tag : tags) {
      Set<String> owners = policy.tagOwners().get(tag);
      if (owners == null) return tag + " is not defined in the policy's tagOwners";
      if (user != null && !owners.contains(user)) {
        return "user "
            + user
            + " does not own "
            + tag
            + " (its owners per tagOwners: "
            + owners
            + ")";
      }
    }
    return null;
  }

  /** A node by name or overlay address, else what a test may name; one principal only. */
  private static Principal resolve(String text, List<NodeRecord> nodes, Names names)
      throws PolicyException {
    for (NodeRecord r : nodes) {
      if (text.toLowerCase(Locale.ROOT).equals(r.hostname())
          || text.equals(r.ipv4())
          || text.equals(r.ipv6())) {
        return Principal.node(r.hostname(), r.user(), r.tags(), r.ipv4(), r.ipv6());
      }
    }
    List<Principal> ps = names.principals(text, 0);
    if (ps.size() != 1) {
      throw new PolicyException(
          0, "\"" + text + "\" stands for several users: name one user, tag, node or address");
    }
    return ps.getFirst();
  }

  /** The port, or -2 when it is not one. */
  private static int parsePort(String s) {
    try {
      int p = Integer.parseInt(s);
      return p >= 0 && p <= 65535 ? p : -2;
    } catch (NumberFormatException e) {
      return -2;
    }
  }
}
