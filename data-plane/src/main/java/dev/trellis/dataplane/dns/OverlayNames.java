package dev.trellis.dataplane.dns;

import dev.trellis.proto.control.ControlMessage;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.xbill.DNS.AAAARecord;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.CNAMERecord;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Name;
import org.xbill.DNS.PTRRecord;
import org.xbill.DNS.Record;
import org.xbill.DNS.ReverseMap;
import org.xbill.DNS.TextParseException;
import org.xbill.DNS.Type;

/**
 * The overlay's names as one node sees them: itself and every peer in its map (so a peer the policy
 * hides has no name here) as {@code HOSTNAME.BASE} and bare {@code HOSTNAME}, their reverse names,
 * and the extra records the server configured. Immutable; built on the agent loop from each map and
 * read by the resolver's thread.
 */
public final class OverlayNames {
  /** Answers change with the map: resolvers should not keep them long. */
  static final long TTL = 5;

  /** What a question gets: records, "no such name here", or "not ours: ask upstream". */
  public enum Kind {
    ANSWER,
    NO_SUCH_NAME,
    NOT_OURS
  }

  public record Answer(Kind kind, List<Record> records) {}

  private final Name base;
  private final Map<Name, List<InetAddress>> addresses;
  private final Map<Name, Name> aliases;
  private final Map<Name, Name> reverse;

  private OverlayNames(
      Name base,
      Map<Name, List<InetAddress>> addresses,
      Map<Name, Name> aliases,
      Map<Name, Name> reverse) {
    this.base = base;
    this.addresses = addresses;
    this.aliases = aliases;
    this.reverse = reverse;
  }

  public Name base() {
    return base;
  }

  /** The names of {@code self} and {@code peers} under {@code dns}, or null without names. */
  public static OverlayNames of(
      ControlMessage.DnsInfo dns,
      ControlMessage.NodeInfo self,
      Collection<ControlMessage.NodeInfo> peers) {
    if (dns == null || dns.baseDomain() == null || dns.baseDomain().isBlank()) return null;
    Name base;
    try {
      base = Name.fromString(dns.baseDomain().toLowerCase(Locale.ROOT), Name.root);
    } catch (TextParseException e) {
      return null;
    }
    Map<Name, List<InetAddress>> addresses = new HashMap<>();
    Map<Name, Name> reverse = new HashMap<>();
    List<ControlMessage.NodeInfo> all = new ArrayList<>(peers);
    if (self != null) all.add(self);
    for (ControlMessage.NodeInfo n : all) {
      Name name = child(n.hostname(), base);
      if (name == null || n.addresses() == null) continue;
      List<InetAddress> list = new ArrayList<>();
      for (String a : n.addresses()) {
        try {
          InetAddress address =
              InetAddress.ofLiteral(a.contains("/") ? a.substring(0, a.indexOf('/')) : a);
          list.add(address);
          reverse.put(ReverseMap.fromAddress(address), name);
        } catch (IllegalArgumentException e) {
          // not an address: no name for it
        }
      }
      addresses.put(name, List.copyOf(list));
    }
    Map<Name, Name> aliases = new HashMap<>();
    for (ControlMessage.DnsRecord r :
        dns.records() == null ? List.<ControlMessage.DnsRecord>of() : dns.records()) {
      Name name = r.name().endsWith(".") ? absolute(r.name()) : child(r.name(), base);
      if (name == null) continue;
      switch (r.type()) {
        case "A", "AAAA" -> {
          try {
            List<InetAddress> list = new ArrayList<>(addresses.getOrDefault(name, List.of()));
            list.add(InetAddress.ofLiteral(r.value()));
            addresses.put(name, List.copyOf(list));
          } catch (IllegalArgumentException e) {
            // checked by the server
          }
        }
        case "CNAME" -> {
          Name target = absolute(r.value().endsWith(".") ? r.value() : r.value() + ".");
          if (target != null) aliases.put(name, target);
        }
        default -> {}
      }
    }
    return new OverlayNames(base, Map.copyOf(addresses), Map.copyOf(aliases), Map.copyOf(reverse));
  }

  /** The answer to one question. */
  public Answer answer(Name question, int type) {
    Name q = lower(question);
    if (type == Type.PTR && reverse.containsKey(q)) {
      return new Answer(
          Kind.ANSWER, List.of(new PTRRecord(question, DClass.IN, TTL, reverse.get(q))));
    }
    // A bare label (no search list applied) that is one of ours.
    if (q.labels() == 2) {
      Name full = child(q.getLabelString(0), base);
      if (full != null && (addresses.containsKey(full) || aliases.containsKey(full))) {
        return records(question, full, type);
      }
      return new Answer(Kind.NOT_OURS, List.of());
    }
    if (!q.subdomain(base) && !addresses.containsKey(q) && !aliases.containsKey(q)) {
      return new Answer(Kind.NOT_OURS, List.of());
    }
    if (!addresses.containsKey(q) && !aliases.containsKey(q)) {
      return new Answer(q.equals(base) ? Kind.ANSWER : Kind.NO_SUCH_NAME, List.of());
    }
    return records(question, q, type);
  }

  private Answer records(Name owner, Name name, int type) {
    List<Record> out = new ArrayList<>();
    Name target = aliases.get(name);
    if (target != null) {
      out.add(new CNAMERecord(owner, DClass.IN, TTL, target));
      if (type != Type.CNAME && addresses.containsKey(lower(target))) {
        for (InetAddress a : addresses.get(lower(target))) add(out, target, a, type);
      }
      return new Answer(Kind.ANSWER, out);
    }
    for (InetAddress a : addresses.get(name)) add(out, owner, a, type);
    // No record of that type: the name exists (NOERROR with no answers).
    return new Answer(Kind.ANSWER, out);
  }

  private static void add(List<Record> out, Name owner, InetAddress a, int type) {
    if (a instanceof Inet4Address v4 && (type == Type.A || type == Type.ANY)) {
      out.add(new ARecord(owner, DClass.IN, TTL, v4));
    } else if (!(a instanceof Inet4Address) && (type == Type.AAAA || type == Type.ANY)) {
      out.add(new AAAARecord(owner, DClass.IN, TTL, a));
    }
  }

  private static Name child(String label, Name base) {
    if (label == null || label.isBlank()) return null;
    try {
      return Name.fromString(label.toLowerCase(Locale.ROOT), base);
    } catch (TextParseException e) {
      return null;
    }
  }

  private static Name absolute(String name) {
    try {
      return Name.fromString(name.toLowerCase(Locale.ROOT));
    } catch (TextParseException e) {
      return null;
    }
  }

  private static Name lower(Name n) {
    return absolute(n.toString());
  }
}
