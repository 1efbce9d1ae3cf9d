package dev.trellis.control.dns;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.trellis.proto.control.ControlMessage;
import java.util.List;
import org.junit.jupiter.api.Test;

/** trellis.dns: defaults, a full example, and each bad value refused with its key. */
class DnsSettingsTest {
  private static ControlMessage.DnsInfo parse(String hocon) {
    return DnsSettings.from(
        ConfigFactory.parseString(hocon)
            .withFallback(ConfigFactory.defaultReference())
            .resolve()
            .getConfig("trellis"));
  }

  @Test
  void onByDefaultOffWhenSaidAndFullWhenSet() {
    assertEquals("trellis.internal", parse("").baseDomain());
    assertNull(parse("trellis.dns.enabled = false"));
    ControlMessage.DnsInfo dns =
        parse(
            """
            trellis.dns {
              enabled = true
              base-domain = "Lab.Internal."
              extra-records = [ { name = "rosmaster", type = "cname", value = "robot-1.lab.internal" },
                                { name = "printer.campus.example.", type = "A", value = "198.18.10.80" } ]
              nameservers = ["198.18.10.53"]
            }
            """);
    assertEquals("lab.internal", dns.baseDomain());
    assertEquals(2, dns.records().size());
    assertEquals("CNAME", dns.records().getFirst().type());
    assertEquals(List.of("198.18.10.53"), dns.nameservers());
  }

  @Test
  void badValuesAreRefusedNamingTheKey() {
    String[][] cases = {
      {"base-domain = \"lab internal\"", "trellis.dns.base-domain"},
      {
        "extra-records = [ { name = \"p\", type = \"MX\", value = \"x\" } ]",
        "type must be A, AAAA or CNAME"
      },
      {
        "extra-records = [ { name = \"p\", type = \"A\", value = \"fd7a::1\" } ]",
        "is not a valid A record value"
      },
      {"extra-records = [ { name = \"-p\", type = \"A\", value = \"10.0.0.1\" } ]", "bad name"},
      {"nameservers = [\"ns.example\"]", "is not an IP address"},
    };
    for (String[] c : cases) {
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class,
              () -> parse("trellis.dns { enabled = true, " + c[0] + " }"),
              c[0]);
      assertTrue(e.getMessage().contains(c[1]), c[0] + " -> " + e.getMessage());
    }
  }
}
