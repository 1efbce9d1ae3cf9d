package dev.trellis.control.dns;

import com.typesafe.config.Config;
import dev.trellis.proto.control.ControlMessage;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * {@code trellis.dns}: the base domain every node's name lives under, extra records (a printer, a
 * ROS master alias) and name servers for the rest of the base domain; nodes get it in their map.
 */
public final class DnsSettings {
  /** A DNS name: dot-separated labels of letters, digits and hyphens, not starting with one. */
  private static final Pattern NAME =
      Pattern.compile(
          "([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*");

  private DnsSettings() {}

  /** The names part of the map, or null when {@code trellis.dns.enabled = false}. */
  public static ControlMessage.DnsInfo from(Config trellis) {
    Config dns = trellis.getConfig("dns");
    if (!dns.getBoolean("enabled")) return null;
    String base =
        dns.getString("base-domain").strip().toLowerCase(Locale.ROOT).replaceAll("\\.$", "");
    if (!NAME.matcher(base).matches() || base.length() > 200) {
      throw new IllegalArgumentException(
          "trellis.dns.base-domain must be a DNS name like lab.internal, not '" + base + "'");
    }
    List<ControlMessage.DnsRecord> records = new ArrayList<>();
    for (Config r : dns.getConfigList("extra-records")) {
      String name = r.getString("name").strip().toLowerCase(Locale.ROOT);
      String type = r.getString("type").strip().toUpperCase(Locale.ROOT);
      String value = r.getString("value").strip();
      String bare = name.endsWith(".") ? name.substring(0, name.length() - 1) : name;
      if (!NAME.matcher(bare).matches()) {
        throw new IllegalArgumentException("trellis.dns.extra-records: bad name '" + name + "'");
      }
      boolean ok =
          switch (type) {
            case "A" -> literal(value) instanceof Inet4Address;
            case "AAAA" -> literal(value) instanceof Inet6Address;
            case "CNAME" ->
                NAME.matcher(value.toLowerCase(Locale.ROOT).replaceAll("\\.$", "")).matches();
            default ->
                throw new IllegalArgumentException(
                    "trellis.dns.extra-records: type must be A, AAAA or CNAME, not '" + type + "'");
          };
      if (!ok) {
        throw new IllegalArgumentException(
            "trellis.dns.extra-records: '" + value + "' is not a valid " + type + " record value");
      }
      records.add(new ControlMessage.DnsRecord(name, type, value));
    }
    List<String> servers = new ArrayList<>();
    for (String s : dns.getStringList("nameservers")) {
      if (literal(s.strip()) == null) {
        throw new IllegalArgumentException(
            "trellis.dns.nameservers: '" + s + "' is not an IP address");
      }
      servers.add(s.strip());
    }
    return new ControlMessage.DnsInfo(base, List.copyOf(records), List.copyOf(servers));
  }

  private static InetAddress literal(String s) {
    try {
      return InetAddress.ofLiteral(s);
    } catch (IllegalArgumentException e) {
      return null;
    }
  }
}
