package dev.trellis.control.policy;

import dev.trellis.control.Tags;
import dev.trellis.control.policy.PolicyJson.Arr;
import dev.trellis.control.policy.PolicyJson.Obj;
import dev.trellis.control.policy.PolicyJson.Str;
import dev.trellis.control.policy.PolicyJson.Value;
import dev.trellis.proto.control.ControlMessage.PortRange;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * An access policy in Tailscale's policy-file format as Headscale reads it: HuJSON with {@code
 * groups}, {@code tagOwners}, {@code hosts}, {@code acls} and {@code tests}. {@link #parse} accepts
 * only what Trellis enforces: any other section, key, selector or value is an error naming it and
 * its line, never ignored. A parsed policy has passed its own tests.
 *
 * <p>Immutable; safe to share between threads.
 */
public record Policy(
    Map<String, Set<String>> groups,
    Map<String, Set<String>> tagOwners,
    Map<String, Cidr> hosts,
    List<Acl> acls,
    List<PolicyTest> tests) {

  private static final Set<String> SECTIONS =
      Set.of("groups", "tagOwners", "hosts", "acls", "tests");
  private static final Set<String> ACL_KEYS = Set.of("action", "src", "dst", "proto");
  private static final Set<String> TEST_KEYS = Set.of("src", "proto", "accept", "deny");

  /** One {@code tests} entry: {@code src} must reach every {@code accept} and no {@code deny}. */
  public record PolicyTest(
      int line, String src, String proto, List<String> accept, List<String> deny) {}

  /** Parses, checks and tests {@code text}. */
  public static Policy parse(String text) throws PolicyException {
    Value root = PolicyJson.read(text);
    if (!(root instanceof Obj top)) {
      throw new PolicyException(root.line(), "a policy is a JSON object");
    }
    for (var e : top.fields().entrySet()) {
      if (!SECTIONS.contains(e.getKey())) {
        throw new PolicyException(
            e.getValue().line(),
            "\""
                + e.getKey()
                + "\" is not supported by Trellis (supported: groups, tagOwners, hosts, acls, tests)");
      }
    }
    Map<String, Set<String>> groups = groups(top.fields().get("groups"));
    Map<String, Cidr> hosts = hosts(top.fields().get("hosts"));
    Map<String, Set<String>> tagOwners = tagOwners(top.fields().get("tagOwners"), groups);
    Names names = new Names(groups, tagOwners, hosts);
    List<Acl> acls = acls(top.fields().get("acls"), names);
    List<PolicyTest> tests = tests(top.fields().get("tests"), names);
    Policy policy = new Policy(groups, tagOwners, hosts, acls, tests);
    policy.runTests(names);
    return policy;
  }

  // ---- sections --------------------------------------------------------------------------------

  private static Map<String, Set<String>> groups(Value v) throws PolicyException {
    Map<String, Set<String>> groups = new LinkedHashMap<>();
    if (v == null) return groups;
    for (var e : object(v, "groups").fields().entrySet()) {
      String name = e.getKey();
      if (!name.startsWith("group:") || name.length() == 6) {
        throw new PolicyException(
            e.getValue().line(), "group names look like group:name, not \"" + name + "\"");
      }
      Set<String> users = new LinkedHashSet<>();
      for (Str member : strings(e.getValue(), name)) {
        String user = userName(member.text());
        if (user == null) {
          throw new PolicyException(
              member.line(),
              name
                  + ": members are users written name@ (groups cannot contain \""
                  + member.text()
                  + "\")");
        }
        users.add(user);
      }
      groups.put(name, Set.copyOf(users));
    }
    return groups;
  }

  private static Map<String, Cidr> hosts(Value v) throws PolicyException {
    Map<String, Cidr> hosts = new LinkedHashMap<>();
    if (v == null) return hosts;
    for (var e : object(v, "hosts").fields().entrySet()) {
      String name = e.getKey();
      if (name.isEmpty() || name.contains(":") || name.contains("@") || name.equals("*")) {
        throw new PolicyException(e.getValue().line(), "\"" + name + "\" cannot be a host name");
      }
      if (!(e.getValue() instanceof Str s) || Cidr.parse(s.text()) == null) {
        throw new PolicyException(
            e.getValue().line(), "host " + name + " must be an IP address or prefix");
      }
      hosts.put(name, Cidr.parse(s.text()));
    }
    return hosts;
  }

  private static Map<String, Set<String>> tagOwners(Value v, Map<String, Set<String>> groups)
      throws PolicyException {
    Map<String, Set<String>> owners = new LinkedHashMap<>();
    if (v == null) return owners;
    for (var e : object(v, "tagOwners").fields().entrySet()) {
      String tag = e.getKey();
      if (!Tags.isTag(tag)) {
        throw new PolicyException(
            e.getValue().line(), "\"" + tag + "\" is not a tag (tag:name, a-z 0-9 -)");
      }
      Set<String> users = new TreeSet<>();
      for (Str owner : strings(e.getValue(), tag)) {
        String o = owner.text();
        if (o.startsWith("group:")) {
          Set<String> members = groups.get(o);
          if (members == null) throw new PolicyException(owner.line(), "unknown group " + o);
          users.addAll(members);
        } else if (userName(o) != null) {
          users.add(userName(o));
        } else {
          throw new PolicyException(
              owner.line(), tag + ": owners are users (name@) or groups, not \"" + o + "\"");
        }
      }
      owners.put(tag, Set.copyOf(users));
    }
    return owners;
  }

  private static List<Acl> acls(Value v, Names names) throws PolicyException {
    List<Acl> acls = new ArrayList<>();
    for (Obj rule : entries(v, "acls", "an acls entry", ACL_KEYS)) {
      String action = text(rule, "action", "an acls entry");
      if (!"accept".equals(action)) {
        throw new PolicyException(
            rule.fields().get("action").line(),
            "action must be \"accept\", not \"" + action + "\"");
      }
      List<Selector> src = new ArrayList<>();
      for (Str s : strings(required(rule, "src"), "src")) {
        Selector selector = names.selector(s.text(), s.line());
        if (selector instanceof Selector.Self) {
          throw new PolicyException(s.line(), "autogroup:self can only be a destination");
        }
        src.add(selector);
      }
      List<Acl.Destination> dst = new ArrayList<>();
      for (Str d : strings(required(rule, "dst"), "dst")) {
        dst.add(destination(d, names));
      }
      Set<Integer> protos = Set.of();
      Value proto = rule.fields().get("proto");
      if (proto != null) {
        if (!(proto instanceof Str p) || Protocols.parse(p.text()) == null) {
          throw new PolicyException(proto.line(), "unknown proto " + describe(proto));
        }
        protos = Set.copyOf(Protocols.parse(p.text()));
      }
      acls.add(new Acl(acls.size(), rule.line(), List.copyOf(src), List.copyOf(dst), protos));
    }
    return List.copyOf(acls);
  }

  private static Acl.Destination destination(Str d, Names names) throws PolicyException {
    int colon = d.text().lastIndexOf(':');
    if (colon <= 0 || colon == d.text().length() - 1) {
      throw new PolicyException(
          d.line(), "dst \"" + d.text() + "\" must be host:ports, e.g. tag:robot:22 or *:*");
    }
    String host = d.text().substring(0, colon);
    List<PortRange> ports = ports(d.text().substring(colon + 1), d.line());
    return new Acl.Destination(names.selector(host, d.line()), ports, d.text());
  }

  static List<PortRange> ports(String text, int line) throws PolicyException {
    if (text.equals("*")) return List.of(PortRange.ALL);
    List<PortRange> ports = new ArrayList<>();
    for (String part : text.split(",", -1)) {
      String[] ends = part.split("-", -1);
      try {
        if (ends.length > 2) throw new NumberFormatException();
        int first = Integer.parseInt(ends[0]);
        int last = ends.length == 2 ? Integer.parseInt(ends[1]) : first;
        if (first < 0 || last > 65535 || first > last) throw new NumberFormatException();
        ports.add(new PortRange(first, last));
      } catch (NumberFormatException e) {
        throw new PolicyException(
            line, "bad ports \"" + text + "\": use *, a port, a range 8000-8100, or a list 22,80");
      }
    }
    return List.copyOf(ports);
  }

  private static List<PolicyTest> tests(Value v, Names names) throws PolicyException {
    List<PolicyTest> tests = new ArrayList<>();
    for (Obj test : entries(v, "tests", "a tests entry", TEST_KEYS)) {
      String src = text(test, "src", "a tests entry");
      names.principals(src, test.fields().get("src").line());
      String proto = test.fields().containsKey("proto") ? text(test, "proto", "a test") : null;
      if (proto != null && Protocols.one(proto) < 0) {
        throw new PolicyException(
            test.fields().get("proto").line(), "unknown proto \"" + proto + "\"");
      }
      List<String> accept = targets(test, "accept", names);
      List<String> deny = targets(test, "deny", names);
      tests.add(new PolicyTest(test.line(), src, proto, accept, deny));
    }
    return List.copyOf(tests);
  }

  private static List<String> targets(Obj test, String key, Names names) throws PolicyException {
    List<String> out = new ArrayList<>();
    Value v = test.fields().get(key);
    if (v == null) return out;
    for (Str t : strings(v, key)) {
      names.target(t.text(), t.line());
      out.add(t.text());
    }
    return List.copyOf(out);
  }

  // ---- evaluation ------------------------------------------------------------------------------

  /** The rule (and its destination) allowing a connection, or null: what {@code why} answers. */
  public record Verdict(Acl acl, Acl.Destination destination) {
    public boolean allowed() {
      return acl != null;
    }
  }

  /** The first rule letting {@code src} open {@code proto} to {@code dst}:{@code port}, if any. */
  public Verdict decide(Principal src, Principal dst, int proto, int port) {
    for (Acl acl : acls) {
      Acl.Destination d = acl.allows(src, dst, proto, port);
      if (d != null) return new Verdict(acl, d);
    }
    return new Verdict(null, null);
  }

  /** The names this policy defines, for resolving {@code why}'s arguments and its tests. */
  public Names names() {
    return new Names(groups, tagOwners, hosts);
  }

  private void runTests(Names names) throws PolicyException {
    int n = 0;
    for (PolicyTest test : tests) {
      n++;
      int proto = Protocols.one(test.proto());
      for (Principal src : names.principals(test.src(), test.line())) {
        for (String target : test.accept()) expect(n, test, src, target, proto, true, names);
        for (String target : test.deny()) expect(n, test, src, target, proto, false, names);
      }
    }
  }

  /** Test {@code n}'s expectation that {@code src} may (or may not) reach {@code target}. */
  private void expect(
      int n, PolicyTest test, Principal src, String target, int proto, boolean reach, Names names)
      throws PolicyException {
    Names.Target t = names.target(target, test.line());
    for (Principal dst : t.principals()) {
      Verdict v = decide(src, dst, proto, t.port());
      if (v.allowed() == reach) continue;
      String what = src.name() + (reach ? " should reach " : " should not reach ");
      throw new PolicyException(
          test.line(),
          "test "
              + n
              + " fails: "
              + what
              + target
              + "/"
              + Protocols.name(proto)
              + (reach
                  ? " but no rule allows it"
                  : " but acls[" + v.acl().index() + "] (line " + v.acl().line() + ") allows it"));
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** The user a {@code name@} or {@code name@domain} token names, or null. */
  static String userName(String token) {
    int at = token.indexOf('@');
    if (at <= 0) return null;
    return at == token.length() - 1 ? token.substring(0, at) : token;
  }

  /**
   * The objects of a list section, each with only {@code keys}; none when the section is absent.
   */
  private static List<Obj> entries(Value v, String section, String what, Set<String> keys)
      throws PolicyException {
    List<Obj> out = new ArrayList<>();
    if (v == null) return out;
    if (!(v instanceof Arr arr)) throw new PolicyException(v.line(), section + " must be a list");
    for (Value item : arr.items()) {
      Obj o = object(item, what);
      known(o, keys, what);
      out.add(o);
    }
    return out;
  }

  private static Obj object(Value v, String what) throws PolicyException {
    if (v instanceof Obj o) return o;
    throw new PolicyException(v.line(), what + " must be an object");
  }

  private static List<Str> strings(Value v, String what) throws PolicyException {
    if (!(v instanceof Arr arr))
      throw new PolicyException(v.line(), what + " must be a list of strings");
    List<Str> out = new ArrayList<>();
    for (Value item : arr.items()) {
      if (!(item instanceof Str s)) {
        throw new PolicyException(
            item.line(), what + " must be a list of strings, not " + describe(item));
      }
      out.add(s);
    }
    return out;
  }

  private static Value required(Obj o, String key) throws PolicyException {
    Value v = o.fields().get(key);
    if (v == null) throw new PolicyException(o.line(), "an acls entry needs \"" + key + "\"");
    return v;
  }

  private static String text(Obj o, String key, String what) throws PolicyException {
    Value v = o.fields().get(key);
    if (v == null) throw new PolicyException(o.line(), what + " needs \"" + key + "\"");
    if (!(v instanceof Str s)) throw new PolicyException(v.line(), key + " must be a string");
    return s.text();
  }

  private static void known(Obj o, Set<String> keys, String what) throws PolicyException {
    for (var e : o.fields().entrySet()) {
      if (!keys.contains(e.getKey())) {
        throw new PolicyException(
            e.getValue().line(),
            "\""
                + e.getKey()
                + "\" in "
                + what
                + " is not supported by Trellis (supported: "
                + String.join(", ", new TreeSet<>(keys))
                + ")");
      }
    }
  }

  private static String describe(Value v) {
    return switch (v) {
      case Str s -> "\"" + s.text() + "\"";
      case PolicyJson.Other o -> o.text();
      case Arr a -> "a list";
      case Obj o -> "an object";
    };
  }
}
