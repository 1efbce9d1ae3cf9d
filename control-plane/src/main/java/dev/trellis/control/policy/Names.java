package dev.trellis.control.policy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The names a policy defines (groups, tags, hosts) and how a written selector resolves against
 * them: to a {@link Selector} in rules, to principals in tests and in {@code policy why}.
 */
public record Names(
    Map<String, Set<String>> groups, Map<String, Set<String>> tagOwners, Map<String, Cidr> hosts) {

  /** A {@code tests} target or a {@code why} destination: who, and which port (-1: any). */
  record Target(List<Principal> principals, int port) {}

  Selector selector(String text, int line) throws PolicyException {
    if (text.equals("*")) return new Selector.Any(text);
    if (text.startsWith("autogroup:")) {
      return switch (text) {
        case "autogroup:member" -> new Selector.Member(text);
        case "autogroup:tagged" -> new Selector.Tagged(text);
        case "autogroup:self" -> new Selector.Self(text);
        default ->
            throw new PolicyException(
                line,
                text
                    + " is not supported by Trellis (supported: autogroup:member, autogroup:tagged,"
                    + " autogroup:self)");
      };
    }
    if (text.startsWith("group:")) {
      Set<String> users = groups.get(text);
      if (users == null) throw new PolicyException(line, "unknown group " + text);
      return new Selector.Group(text, users);
    }
    if (text.startsWith("tag:")) {
      if (!tagOwners.containsKey(text)) {
        throw new PolicyException(line, text + " is not defined in tagOwners");
      }
      return new Selector.Tag(text);
    }
    String user = Policy.userName(text);
    if (user != null) return new Selector.User(text, user);
    Cidr host = hosts.get(text);
    if (host != null) return new Selector.Prefix(text, host);
    Cidr cidr = Cidr.parse(text);
    if (cidr != null) return new Selector.Prefix(text, cidr);
    throw new PolicyException(
        line,
        "unknown selector \""
            + text
            + "\" (use *, name@, group:..., tag:..., autogroup:..., a host name, an IP or a CIDR)");
  }

  /**
   * Every principal a test's {@code src} stands for: a user, each user of a group, a tag, an IP.
   */
  List<Principal> principals(String text, int line) throws PolicyException {
    Selector s = selector(text, line);
    return switch (s) {
      case Selector.User u -> List.of(Principal.user(u.name()));
      case Selector.Group g -> {
        List<Principal> out = new ArrayList<>();
        for (String user : g.users()) out.add(Principal.user(user));
        yield out;
      }
      case Selector.Tag t -> List.of(Principal.tag(t.text()));
      case Selector.Prefix p when isSingleAddress(p.cidr()) ->
          List.of(Principal.address(text, p.cidr().network()));
      default ->
          throw new PolicyException(
              line,
              "\""
                  + text
                  + "\" cannot stand for a host in a test: use a user, group, tag, host or IP");
    };
  }

  /** A {@code host:port} test target; the port is required. */
  Target target(String text, int line) throws PolicyException {
    int colon = text.lastIndexOf(':');
    if (colon <= 0)
      throw new PolicyException(line, "test target \"" + text + "\" must be host:port");
    String portText = text.substring(colon + 1);
    int port;
    try {
      port = Integer.parseInt(portText);
      if (port < 0 || port > 65535) throw new NumberFormatException();
    } catch (NumberFormatException e) {
      throw new PolicyException(
          line, "test target \"" + text + "\" needs one port, e.g. tag:robot:22");
    }
    return new Target(principals(text.substring(0, colon), line), port);
  }

  private static boolean isSingleAddress(Cidr c) {
    return c.bits() == c.network().length * 8;
  }
}
