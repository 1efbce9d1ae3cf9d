package dev.trellis.proto.wireguard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.management.ThreadMXBean;
import dev.trellis.proto.wireguard.AllowedIps.Prefix;
import java.lang.management.ManagementFactory;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class AllowedIpsTest {

  private final AllowedIps<String> table = new AllowedIps<>();

  private static byte[] ip(String literal) {
    return Prefix.parse(literal).address().getAddress();
  }

  private void add(String prefix, String owner) {
    table.insert(Prefix.parse(prefix), owner);
  }

  private String find(String address) {
    return table.lookupAddress(ip(address));
  }

  private static byte[] ipv4Packet(String source, String destination) {
    byte[] p = new byte[20];
    p[0] = 0x45;
    System.arraycopy(ip(source), 0, p, 12, 4);
    System.arraycopy(ip(destination), 0, p, 16, 4);
    return p;
  }

  private static byte[] ipv6Packet(String source, String destination) {
    byte[] p = new byte[40];
    p[0] = 0x60;
    System.arraycopy(ip(source), 0, p, 8, 16);
    System.arraycopy(ip(destination), 0, p, 24, 16);
    return p;
  }

  @Test
  void longestPrefixWinsIpv4() {
    add("10.0.0.0/8", "a");
    add("10.1.0.0/16", "b");
    add("10.1.2.3/32", "c");
    assertEquals("c", find("10.1.2.3"));
    assertEquals("b", find("10.1.2.4"));
    assertEquals("b", find("10.1.255.255"));
    assertEquals("a", find("10.2.0.0"));
    assertEquals("a", find("10.255.255.255"));
    assertNull(find("11.0.0.0"));
    assertNull(find("9.255.255.255"));
  }

  @Test
  void longestPrefixWinsIpv6() {
    add("2001:db8::/32", "a");
    add("2001:db8:1::/48", "b");
    add("2001:db8:1::1/128", "c");
    add("2001:db8:1:0:8000::/65", "d");
    assertEquals("c", find("2001:db8:1::1"));
    assertEquals("b", find("2001:db8:1::2"));
    assertEquals("d", find("2001:db8:1:0:8000::1"));
    assertEquals("a", find("2001:db8:2::1"));
    assertNull(find("2001:db9::"));
    assertNull(find("10.1.2.3"));
  }

  @Test
  void insertionOrderDoesNotMatter() {
    add("10.1.2.3/32", "c");
    add("10.1.0.0/16", "b");
    add("10.0.0.0/8", "a");
    assertEquals("c", find("10.1.2.3"));
    assertEquals("b", find("10.1.2.4"));
    assertEquals("a", find("10.2.0.0"));
  }

  @Test
  void defaultRoutesPerFamily() {
    add("0.0.0.0/0", "v4");
    assertEquals("v4", find("192.0.2.1"));
    assertEquals("v4", find("255.255.255.255"));
    assertNull(find("2001:db8::1"));
    add("::/0", "v6");
    assertEquals("v6", find("2001:db8::1"));
    assertEquals("v6", find("::"));
    add("192.0.2.0/24", "doc");
    assertEquals("doc", find("192.0.2.1"));
    assertEquals("v4", find("198.51.100.1"));
  }

  @Test
  void removalRestoresShorterMatch() {
    add("10.0.0.0/8", "a");
    add("10.1.0.0/16", "b");
    add("10.1.2.3/32", "c");
    assertTrue(table.remove(Prefix.parse("10.1.2.3/32"), "c"));
    assertEquals("b", find("10.1.2.3"));
    assertTrue(table.remove(ip("10.1.0.0"), 16, "b"));
    assertEquals("a", find("10.1.2.3"));
    assertFalse(table.remove(ip("10.1.0.0"), 16, "b"));
    assertTrue(table.remove(ip("10.0.0.0"), 8, "a"));
    assertNull(find("10.1.2.3"));
    assertEquals(List.of(), table.prefixesOf("a"));
  }

  @Test
  void removeOnlyByOwner() {
    add("192.0.2.0/24", "a");
    assertFalse(table.remove(Prefix.parse("192.0.2.0/24"), "b"));
    assertEquals("a", find("192.0.2.7"));
    assertFalse(table.remove(Prefix.parse("192.0.2.0/25"), "a")); // not the same prefix
    assertFalse(table.remove(Prefix.parse("192.0.0.0/16"), "a"));
    assertEquals("a", find("192.0.2.7"));
    assertTrue(table.remove(Prefix.parse("192.0.2.99/24"), "a")); // host bits ignored
    assertNull(find("192.0.2.7"));
  }

  @Test
  void removeIntermediateKeepsChildren() {
    add("10.0.0.0/8", "a");
    add("10.1.0.0/16", "b");
    add("10.2.0.0/16", "c");
    assertTrue(table.remove(Prefix.parse("10.0.0.0/8"), "a"));
    assertEquals("b", find("10.1.9.9"));
    assertEquals("c", find("10.2.9.9"));
    assertNull(find("10.3.0.0"));
  }

  @Test
  void removeAllDropsEveryPrefixOfPeer() {
    add("10.0.0.0/8", "a");
    add("10.1.0.0/16", "b");
    add("10.1.2.0/24", "a");
    add("2001:db8::/32", "a");
    add("2001:db8:1::/48", "b");
    table.removeAll("a");
    assertEquals(List.of(), table.prefixesOf("a"));
    assertEquals("b", find("10.1.2.3"));
    assertNull(find("10.2.0.0"));
    assertEquals("b", find("2001:db8:1::5"));
    assertNull(find("2001:db8:2::5"));
    assertEquals(
        List.of(Prefix.parse("10.1.0.0/16"), Prefix.parse("2001:db8:1::/48")),
        table.prefixesOf("b"));
    table.removeAll("nobody");
    assertEquals(2, table.prefixesOf("b").size());
  }

  @Test
  void reinsertReplacesOwner() {
    add("10.1.0.0/16", "a");
    add("10.1.0.0/16", "b");
    assertEquals("b", find("10.1.2.3"));
    assertEquals(List.of(), table.prefixesOf("a"));
    assertEquals(List.of(Prefix.parse("10.1.0.0/16")), table.prefixesOf("b"));
    assertFalse(table.remove(Prefix.parse("10.1.0.0/16"), "a"));
    assertEquals("b", find("10.1.2.3"));
  }

  @Test
  void hostBitsAreMasked() {
    byte[] address = ip("10.1.2.3");
    table.insert(address, 8, "a");
    assertArrayEquals(ip("10.1.2.3"), address, "caller's array must not change");
    assertEquals(List.of(Prefix.parse("10.0.0.0/8")), table.prefixesOf("a"));
    assertEquals("a", find("10.200.0.1"));
    table.insert(ip("2001:db8:1234:5678::ffff"), 36, "b");
    assertEquals("2001:db8:1000::/36", table.prefixesOf("b").getFirst().toString());
    table.insert(ip("192.0.2.255"), 0, "c");
    assertEquals("0.0.0.0/0", table.prefixesOf("c").getFirst().toString());
  }

  @Test
  void prefixesOfIsSorted() {
    String[] prefixes = {
      "2001:db8:1::/48", "10.1.0.0/16", "192.0.2.0/24", "2001:db8::/32",
      "10.0.0.0/8", "10.0.0.0/24", "198.51.100.7/32", "fd00::/8",
    };
    for (String p : prefixes) {
      add(p, "a");
    }
    add("10.9.0.0/16", "b");
    List<String> got = table.prefixesOf("a").stream().map(Prefix::toString).toList();
    assertEquals(
        List.of(
            "10.0.0.0/8",
            "10.0.0.0/24",
            "10.1.0.0/16",
            "192.0.2.0/24",
            "198.51.100.7/32",
            "2001:db8::/32",
            "2001:db8:1::/48",
            "fd00::/8"),
        got);
  }

  @Test
  void packetLookupByDestinationAndSource() {
    add("192.0.2.0/24", "doc1");
    add("198.51.100.0/24", "doc2");
    add("2001:db8:a::/48", "v6a");
    add("2001:db8:b::/48", "v6b");
    byte[] v4 = ipv4Packet("192.0.2.10", "198.51.100.20");
    assertEquals("doc2", table.lookup(v4, 0, v4.length, false));
    assertEquals("doc1", table.lookup(v4, 0, v4.length, true));
    byte[] v6 = ipv6Packet("2001:db8:a::1", "2001:db8:b::1");
    assertEquals("v6b", table.lookup(v6, 0, v6.length, false));
    assertEquals("v6a", table.lookup(v6, 0, v6.length, true));

    // Packet at an offset inside a bigger buffer, with trailing payload.
    byte[] framed = new byte[7 + v6.length + 100];
    System.arraycopy(v6, 0, framed, 7, v6.length);
    assertEquals("v6b", table.lookup(framed, 7, v6.length + 100, false));
    assertEquals("v6a", table.lookup(framed, 7, v6.length, true));
  }

  @Test
  void byteBufferLookup() {
    add("192.0.2.0/24", "doc1");
    add("2001:db8:b::/48", "v6b");
    byte[] v4 = ipv4Packet("198.51.100.1", "192.0.2.200");
    byte[] v6 = ipv6Packet("2001:db8:a::1", "2001:db8:b::1");
    for (boolean direct : new boolean[] {false, true}) {
      for (ByteOrder order : new ByteOrder[] {ByteOrder.BIG_ENDIAN, ByteOrder.LITTLE_ENDIAN}) {
        ByteBuffer buf = direct ? ByteBuffer.allocateDirect(256) : ByteBuffer.allocate(256);
        buf.order(order);
        buf.put(16, v4);
        buf.put(100, v6);
        buf.position(3).limit(140);
        assertEquals("doc1", table.lookup(buf, 16, false));
        assertNull(table.lookup(buf, 16, true));
        assertEquals("v6b", table.lookup(buf, 100, false));
        assertNull(table.lookup(buf, 100, true));
        assertNull(table.lookup(buf, 101, false)); // version nibble 0
        assertEquals(3, buf.position(), "position untouched");
        assertEquals(140, buf.limit(), "limit untouched");
        buf.limit(139); // one byte short of the IPv6 header
        assertNull(table.lookup(buf, 100, false));
        buf.limit(35); // one byte short of the IPv4 header
        assertNull(table.lookup(buf, 16, false));
        assertNull(table.lookup(buf, -1, false));
        assertNull(table.lookup(buf, 35, false));
        assertNull(table.lookup(buf, 1000, false));
      }
    }
  }

  @Test
  void malformedPacketsReturnNull() {
    add("0.0.0.0/0", "v4");
    add("::/0", "v6");
    byte[] v4 = ipv4Packet("192.0.2.1", "192.0.2.2");
    byte[] v6 = ipv6Packet("2001:db8::1", "2001:db8::2");
    assertEquals("v4", table.lookup(v4, 0, 20, false));
    assertEquals("v6", table.lookup(v6, 0, 40, false));
    assertNull(table.lookup(new byte[0], 0, 0, false));
    assertNull(table.lookup(v4, 0, 0, false));
    assertNull(table.lookup(v4, 0, 19, false));
    assertNull(table.lookup(v4, 0, 19, true));
    assertNull(table.lookup(v6, 0, 39, false));
    assertNull(table.lookup(v6, 0, 20, true));
    assertNull(table.lookup(v4, -1, 20, false));
    assertNull(table.lookup(v4, 1, 20, false)); // runs past the array
    assertNull(table.lookup(v4, 0, 21, false));
    assertNull(table.lookup(v4, 0, -5, false));
    assertNull(table.lookup(v4, 20, 1, false));
    assertNull(table.lookup(v4, Integer.MAX_VALUE, 20, false));
    assertNull(table.lookup(v4, 5, Integer.MAX_VALUE, false));
    for (int version : new int[] {0, 1, 5, 7, 15}) {
      byte[] p = v6.clone();
      p[0] = (byte) (version << 4);
      assertNull(table.lookup(p, 0, p.length, false), "version " + version);
    }
    byte[] shortV6 = v4.clone(); // 20 bytes claiming to be IPv6
    shortV6[0] = 0x60;
    assertNull(table.lookup(shortV6, 0, shortV6.length, false));
  }

  @Test
  void ipv4MappedIsNotIpv4() {
    add("10.0.0.0/8", "v4");
    assertNull(find("::ffff:10.0.0.1"));
    add("::ffff:10.0.0.0/104", "mapped");
    assertEquals("mapped", find("::ffff:10.0.0.1"));
    assertEquals("v4", find("10.0.0.1"));
    Prefix mapped = table.prefixesOf("mapped").getFirst();
    assertInstanceOf(Inet6Address.class, mapped.address());
    assertEquals(16, mapped.address().getAddress().length);
    assertEquals("::ffff:10.0.0.0/104", mapped.toString());
    table.removeAll("v4");
    assertNull(find("10.0.0.1"));
    assertEquals("mapped", find("::ffff:10.0.0.1"));
  }

  @Test
  void clearEmptiesBothFamilies() {
    add("10.0.0.0/8", "a");
    add("2001:db8::/32", "a");
    table.clear();
    assertNull(find("10.0.0.1"));
    assertNull(find("2001:db8::1"));
    assertEquals(List.of(), table.prefixesOf("a"));
  }

  @Test
  void invalidArgumentsRejected() {
    assertThrows(IllegalArgumentException.class, () -> table.insert(new byte[5], 8, "a"));
    assertThrows(IllegalArgumentException.class, () -> table.insert(new byte[4], 33, "a"));
    assertThrows(IllegalArgumentException.class, () -> table.insert(new byte[16], 129, "a"));
    assertThrows(IllegalArgumentException.class, () -> table.insert(new byte[4], -1, "a"));
    assertThrows(NullPointerException.class, () -> table.insert(new byte[4], 8, null));
    assertThrows(IllegalArgumentException.class, () -> table.lookupAddress(new byte[3]));
  }

  @Test
  void prefixParseAndFormat() {
    assertEquals("10.0.0.0/8", Prefix.parse("10.0.0.0/8").toString());
    assertEquals("fd00::/64", Prefix.parse("fd00::/64").toString());
    assertEquals("fd00::/64", Prefix.parse("FD00:0:0:0::/64").toString());
    assertEquals("10.1.2.3/32", Prefix.parse("10.1.2.3").toString());
    assertEquals("2001:db8::1/128", Prefix.parse("2001:db8::1").toString());
    assertEquals("0.0.0.0/0", Prefix.parse("0.0.0.0/0").toString());
    assertEquals("::/0", Prefix.parse("::/0").toString());
    assertEquals("10.0.0.0/8", Prefix.parse(" 10.9.8.7/8 ").toString());
    assertEquals("2001:db8:0:1::/64", Prefix.parse("2001:db8:0:1:0:0:0:0/64").toString());
    assertEquals("2001:db8::1:0:0:1/128", Prefix.parse("2001:db8:0:0:1:0:0:1").toString());
    assertEquals("2001:0:1::/48", Prefix.parse("2001:0:1::/48").toString());
    assertEquals("::1/128", Prefix.parse("::1").toString());
    assertEquals(Prefix.parse("10.0.0.0/8"), Prefix.parse("10.255.0.1/8"));
    assertEquals(Prefix.parse("fd00::/8"), Prefix.parse("fdff::1/8"));
  }

  @Test
  void prefixParseErrors() {
    String[] bad = {
      "",
      "/8",
      "10.0.0.0/",
      "10.0.0.256/8",
      "10.0.0/8",
      "10.0.0.0.0/8",
      "10.0.0.0./8",
      "10.0.0.0/33",
      "10.0.0.0/-1",
      "10.0.0.0/+8",
      "10.0.0.0/8/9",
      "fd00::/129",
      "fd00::/abc",
      "hello",
      "example.com/24",
      "010.0.0.0/8",
      "1::2::3/64",
      "fe80::1%eth0/64",
      "[fd00::]/64",
      "10.0.0.0 /8",
      "10.0.0.0/ 8",
      "1.2.3.4/0008",
    };
    for (String s : bad) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> Prefix.parse(s), s);
      assertTrue(e.getMessage().contains("\"" + s + "\""), e.getMessage());
    }
    assertThrows(
        IllegalArgumentException.class, () -> new Prefix(Prefix.parse("10.0.0.0/8").address(), 33));
  }

  @Test
  void randomAgainstBruteForce() {
    Random random = new Random(42);
    String[] owners = {"p0", "p1", "p2", "p3", "p4", "p5"};
    Map<Prefix, String> model = new HashMap<>();
    for (int step = 0; step < 4000; step++) {
      int op = random.nextInt(100);
      if (op < 65 || model.isEmpty()) {
        Prefix p = randomPrefix(random);
        String owner = owners[random.nextInt(owners.length)];
        table.insert(p, owner);
        model.put(p, owner);
      } else if (op < 90) {
        List<Prefix> keys = new ArrayList<>(model.keySet());
        keys.sort(Comparator.comparing(Prefix::toString));
        Prefix p =
            random.nextBoolean() ? keys.get(random.nextInt(keys.size())) : randomPrefix(random);
        String owner = owners[random.nextInt(owners.length)];
        boolean expected = owner.equals(model.get(p));
        assertEquals(expected, table.remove(p, owner), "remove " + p + " " + owner);
        if (expected) {
          model.remove(p);
        }
      } else if (op < 93) {
        String owner = owners[random.nextInt(owners.length)];
        table.removeAll(owner);
        model.values().removeIf(owner::equals);
      } else if (op < 94) {
        table.clear();
        model.clear();
      }
      for (int q = 0; q < 20; q++) {
        byte[] address = randomAddress(random, random.nextBoolean());
        assertEquals(
            bruteForce(model, address),
            table.lookupAddress(address),
            "step " + step + " address " + Arrays.toString(address));
      }
      if (step % 50 == 0) {
        for (String owner : owners) {
          assertEquals(expectedPrefixes(model, owner), table.prefixesOf(owner));
        }
      }
    }
  }

  @Test
  void lookupDoesNotAllocate() {
    add("10.0.0.0/8", "a");
    add("10.1.0.0/16", "b");
    add("2001:db8::/32", "c");
    add("2001:db8:1::/48", "d");
    byte[] v4 = ipv4Packet("192.0.2.1", "10.1.2.3");
    byte[] v6 = ipv6Packet("2001:db8::1", "2001:db8:1::1");
    ByteBuffer direct = ByteBuffer.allocateDirect(64).put(0, v6);
    var threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
    int hits = 0;
    for (int round = 0; round < 3; round++) { // warm up, then measure
      long before = threads.getCurrentThreadAllocatedBytes();
      for (int i = 0; i < 100_000; i++) {
        hits += table.lookup(v4, 0, v4.length, false) != null ? 1 : 0;
        hits += table.lookup(v6, 0, v6.length, false) != null ? 1 : 0;
        hits += table.lookup(direct, 0, false) != null ? 1 : 0;
      }
      long allocated = threads.getCurrentThreadAllocatedBytes() - before;
      if (round == 2) {
        // One object per lookup would be megabytes; allow a little JIT/runtime noise.
        assertTrue(allocated < 100_000, "allocated " + allocated + " bytes");
      }
    }
    assertEquals(900_000, hits);
  }

  /** Readers never see a half-applied update: the /8 stays, so an answer always exists. */
  @Test
  void lookupsDuringUpdatesAreConsistent() throws Exception {
    AllowedIps<String> shared = new AllowedIps<>();
    shared.insert(Prefix.parse("10.0.0.0/8"), "base");
    byte[] packet = ipv4Packet("192.0.2.1", "10.1.2.3");
    AtomicBoolean stop = new AtomicBoolean();
    AtomicReference<String> failure = new AtomicReference<>();
    List<Thread> readers = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      readers.add(
          Thread.ofPlatform()
              .start(
                  () -> {
                    while (!stop.get()) {
                      String got = shared.lookup(packet, 0, packet.length, false);
                      if (got == null || !(got.equals("base") || got.startsWith("peer"))) {
                        failure.compareAndSet(null, "unexpected " + got);
                      }
                    }
                  }));
    }
    Random random = new Random(7);
    long end = System.nanoTime() + 300_000_000L;
    int n = 0;
    while (System.nanoTime() < end) {
      String peer = "peer" + (n++ % 3);
      shared.insert(Prefix.parse("10.1.0.0/16"), peer);
      shared.insert(Prefix.parse("10." + random.nextInt(256) + ".0.0/16"), peer);
      shared.insert(Prefix.parse("10.1.2.0/24"), peer);
      shared.remove(Prefix.parse("10.1.0.0/16"), peer);
      shared.removeAll(peer);
    }
    stop.set(true);
    for (Thread t : readers) {
      t.join();
    }
    assertNull(failure.get());
    assertEquals("base", shared.lookupAddress(ip("10.1.2.3")));
  }

  // ---- reference model ----

  private static Prefix randomPrefix(Random random) {
    boolean v4 = random.nextBoolean();
    byte[] address = randomAddress(random, v4);
    int length = v4 ? 8 + random.nextInt(25) : 32 + random.nextInt(97);
    return new Prefix(toInet(address), length);
  }

  private static InetAddress toInet(byte[] address) {
    try {
      return address.length == 4
          ? InetAddress.getByAddress(address)
          : Inet6Address.getByAddress(null, address, -1);
    } catch (UnknownHostException e) {
      throw new AssertionError(e);
    }
  }

  /**
   * Addresses in a small space (10/8, 2001:db8::/32) with few varying bits, so prefixes overlap.
   */
  private static byte[] randomAddress(Random random, boolean v4) {
    byte[] a = v4 ? ip("10.0.0.0") : ip("2001:db8::");
    int[] positions = v4 ? new int[] {1, 2, 3} : new int[] {4, 5, 8, 15};
    for (int i : positions) {
      a[i] =
          switch (random.nextInt(4)) {
            case 0 -> 0;
            case 1 -> (byte) 0x80;
            case 2 -> (byte) random.nextInt(4);
            default -> (byte) random.nextInt(256);
          };
    }
    return a;
  }

  private static String bruteForce(Map<Prefix, String> model, byte[] address) {
    String best = null;
    int bestLength = -1;
    for (Map.Entry<Prefix, String> e : model.entrySet()) {
      Prefix p = e.getKey();
      if (p.length() > bestLength && covers(p, address)) {
        best = e.getValue();
        bestLength = p.length();
      }
    }
    return best;
  }

  private static boolean covers(Prefix p, byte[] address) {
    byte[] net = p.address().getAddress();
    if (net.length != address.length) {
      return false;
    }
    for (int bit = 0; bit < p.length(); bit++) {
      int mask = 0x80 >>> (bit % 8);
      if ((net[bit / 8] & mask) != (address[bit / 8] & mask)) {
        return false;
      }
    }
    return true;
  }

  private static List<Prefix> expectedPrefixes(Map<Prefix, String> model, String owner) {
    Comparator<Prefix> order =
        Comparator.comparingInt((Prefix p) -> p.address().getAddress().length)
            .thenComparing(
                (a, b) ->
                    Arrays.compareUnsigned(a.address().getAddress(), b.address().getAddress()))
            .thenComparingInt(Prefix::length);
    return model.entrySet().stream()
        .filter(e -> e.getValue().equals(owner))
        .map(Map.Entry::getKey)
        .sorted(order)
        .toList();
  }
}
