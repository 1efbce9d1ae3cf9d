package dev.trellis.dataplane.dns;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Which way the host's resolver is told, and the reverse zones it is told about. */
class HostResolverTest {
  @TempDir Path dir;

  @Test
  void theOverlaysPrefixesAreCoveredByWholeReverseZones() {
    List<String> zones = ReverseZones.of(List.of("100.64.0.0/10", "fd7a:115c:a1e0::/48"));
    assertEquals(65, zones.size(), zones.toString());
    assertEquals("64.100.in-addr.arpa", zones.get(0));
    assertEquals("127.100.in-addr.arpa", zones.get(63));
    assertEquals("0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa", zones.get(64));
    assertEquals(List.of("5.168.192.in-addr.arpa"), ReverseZones.of(List.of("192.168.5.0/24")));
    assertEquals(
        List.of("0.1.168.192.in-addr.arpa", "1.1.168.192.in-addr.arpa"),
        ReverseZones.of(List.of("192.168.1.0/31")));
    assertEquals(List.of(), ReverseZones.of(List.of("not a prefix")));
  }

  @Test
  void aResolvConfOfSystemdResolvedIsRecognised() throws Exception {
    Path stub = dir.resolve("stub");
    Files.writeString(stub, "# managed\nnameserver 127.0.0.53\noptions edns0 trust-ad\n");
    assertTrue(ResolvedLink.managesResolvConf(stub));
    Path link = dir.resolve("resolv.conf");
    Files.createSymbolicLink(link, Path.of("../run/systemd/resolve/stub-resolv.conf"));
    assertTrue(ResolvedLink.managesResolvConf(link), "a link into resolved's run directory");
    Path plain = dir.resolve("plain");
    Files.writeString(plain, "nameserver 10.0.0.53\nsearch campus.example\n");
    assertFalse(ResolvedLink.managesResolvConf(plain));
    assertFalse(ResolvedLink.managesResolvConf(dir.resolve("missing")));
    // Without a resolved that answers, the file is edited.
    assertInstanceOf(ResolvConf.class, HostResolver.detect(plain, dir, "trellis0"));
  }
}
