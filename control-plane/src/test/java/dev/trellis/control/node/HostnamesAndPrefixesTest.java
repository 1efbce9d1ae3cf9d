package dev.trellis.control.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import org.junit.jupiter.api.Test;

class HostnamesAndPrefixesTest {

  @Test
  void sanitizesRequestedHostnames() {
    assertEquals("robot", Hostnames.sanitize("Robot"));
    assertEquals("robot-7", Hostnames.sanitize("robot_7"));
    assertEquals("my-laptop-local", Hostnames.sanitize("My Laptop.local"));
    assertEquals("a-b", Hostnames.sanitize("--a--b--".replace("--b", "-b")));
    assertEquals("node", Hostnames.sanitize(""));
    assertEquals("node", Hostnames.sanitize("___"));
    assertEquals("node", Hostnames.sanitize(null));
    assertEquals("x".repeat(63), Hostnames.sanitize("x".repeat(80)));
    assertEquals("x".repeat(62), Hostnames.sanitize("x".repeat(62) + "-yyy"));
  }

  @Test
  void makesHostnamesUniqueWithNumericSuffixes() {
    assertEquals("robot", Hostnames.unique("robot", Set.of()::contains));
    assertEquals("robot-1", Hostnames.unique("robot", Set.of("robot")::contains));
    assertEquals("robot-2", Hostnames.unique("robot", Set.of("robot", "robot-1")::contains));
    String long63 = "x".repeat(63);
    String suffixed = Hostnames.unique(long63, Set.of(long63)::contains);
    assertEquals("x".repeat(61) + "-1", suffixed);
    assertTrue(Hostnames.isValid(suffixed));
    assertTrue(Hostnames.isVariantOf("robot-3", "robot"));
    assertTrue(Hostnames.isVariantOf(suffixed, long63));
    assertFalse(Hostnames.isVariantOf("robots", "robot"));
    assertFalse(Hostnames.isVariantOf("robot-x", "robot"));
  }

  @Test
  void validatesHostnames() {
    assertTrue(Hostnames.isValid("a"));
    assertTrue(Hostnames.isValid("robot-1"));
    assertFalse(Hostnames.isValid("-robot"));
    assertFalse(Hostnames.isValid("robot-"));
    assertFalse(Hostnames.isValid("Robot"));
    assertFalse(Hostnames.isValid("ro bot"));
    assertFalse(Hostnames.isValid("x".repeat(64)));
    assertFalse(Hostnames.isValid(""));
    assertFalse(Hostnames.isValid(null));
  }

  @Test
  void mapsOffsetsToAddresses() {
    IpPrefix v4 = IpPrefix.parse("100.64.0.0/10", false);
    IpPrefix v6 = IpPrefix.parse("fd7a:115c:a1e0::/48", true);
    assertEquals("100.64.0.5", v4.addressAt(5));
    assertEquals("fd7a:115c:a1e0::5", v6.addressAt(5));
    assertEquals("100.64.1.0", v4.addressAt(256));
    assertEquals("fd7a:115c:a1e0::100", v6.addressAt(256));
    assertEquals("fd7a:115c:a1e0::3f:ffff", v6.addressAt((1 << 22) - 1));
    assertEquals(1 << 22, v4.size());
    assertEquals(300, v4.offsetOf(v4.addressAt(300)));
    assertEquals(-1, v4.offsetOf("10.0.0.1"));
    assertEquals("100.64.0.0/10", IpPrefix.parse("100.64.3.4/10", false).text());
    assertEquals(
        "2001:db8::1:0:0:1",
        IpPrefix.format(
            new byte[] {0x20, 0x01, 0x0d, (byte) 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}));
    assertEquals("::", IpPrefix.format(new byte[16]));
    assertThrows(IllegalArgumentException.class, () -> IpPrefix.parse("100.64.0.0", false));
    assertThrows(IllegalArgumentException.class, () -> IpPrefix.parse("100.64.0.0/33", false));
    assertThrows(IllegalArgumentException.class, () -> IpPrefix.parse("fd7a::/48", false));
    assertThrows(
        IllegalArgumentException.class, () -> AddressAllocator.create("10.0.0.0/8", "fd00::/112"));
  }
}
