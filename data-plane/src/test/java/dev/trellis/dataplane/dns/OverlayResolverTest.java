package dev.trellis.dataplane.dns;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.proto.control.ControlMessage;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.ReverseMap;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * The node's resolver over real UDP on loopback: overlay names, reverse names, extra records,
 * NXDOMAIN inside the base domain, other names forwarded to the host's name server, and bad
 * questions dropped and counted. Also the resolver configuration file: written, then restored byte
 * for byte.
 */
class OverlayResolverTest {
  private static final ControlMessage.DnsInfo DNS =
      new ControlMessage.DnsInfo(
          "lab.internal",
          List.of(
              new ControlMessage.DnsRecord("printer", "A", "100.64.9.9"),
              new ControlMessage.DnsRecord("rosmaster", "CNAME", "robot-1.lab.internal")),
          List.of());

  private OverlayResolver resolver;
  private OverlayResolver upstream;

  @AfterEach
  void stop() {
    if (resolver != null) resolver.close();
    if (upstream != null) upstream.close();
  }

  private static ControlMessage.NodeInfo node(long id, String name, String v4, String v6) {
    return new ControlMessage.NodeInfo(
        id, name, "lab", "k" + id, List.of(v4, v6), List.of(), true, null, Set.of(), null, false);
  }

  private static OverlayNames names() {
    return OverlayNames.of(
        DNS,
        node(1, "robot-1", "100.64.0.1", "fd7a:115c:a1e0::1"),
        List.of(node(2, "Robot-2", "100.64.0.2", "fd7a:115c:a1e0::2")));
  }

  private static Message ask(InetSocketAddress server, String name, int type) throws Exception {
    Message q = Message.newQuery(Record.newRecord(Name.fromString(name), type, DClass.IN));
    try (DatagramSocket s = new DatagramSocket()) {
      s.setSoTimeout(3000);
      byte[] wire = q.toWire();
      s.send(new DatagramPacket(wire, wire.length, server));
      byte[] in = new byte[4096];
      DatagramPacket p = new DatagramPacket(in, in.length);
      s.receive(p);
      Message m = new Message(java.util.Arrays.copyOf(in, p.getLength()));
      assertEquals(q.getHeader().getID(), m.getHeader().getID());
      return m;
    }
  }

  private static List<String> answers(Message m) {
    return m.getSection(Section.ANSWER).stream().map(r -> r.rdataToString()).toList();
  }

  @Test
  void answersTheOverlayAndForwardsTheRest() throws Exception {
    OverlayNames other =
        OverlayNames.of(
            new ControlMessage.DnsInfo(
                "campus.example",
                List.of(new ControlMessage.DnsRecord("www", "A", "198.51.100.80")),
                List.of()),
            null,
            List.of());
    upstream = OverlayResolver.start(new InetSocketAddress("127.0.0.1", 0), () -> other, List::of);
    resolver =
        OverlayResolver.start(
            new InetSocketAddress("127.0.0.1", 0),
            fixed(names()),
            () -> List.of(upstream.address()));
    InetSocketAddress at = resolver.address();

    assertEquals(List.of("100.64.0.2"), answers(ask(at, "robot-2.lab.internal.", Type.A)));
    assertEquals(
        List.of("fd7a:115c:a1e0:0:0:0:0:2"), answers(ask(at, "ROBOT-2.lab.internal.", Type.AAAA)));
    assertEquals(List.of("100.64.0.1"), answers(ask(at, "robot-1.", Type.A)), "a bare name");
    assertEquals(
        List.of("robot-2.lab.internal."),
        answers(
            ask(
                at,
                ReverseMap.fromAddress(InetAddress.ofLiteral("100.64.0.2")).toString(),
                Type.PTR)));
    assertEquals(
        List.of("robot-1.lab.internal."),
        answers(
            ask(
                at,
                ReverseMap.fromAddress(InetAddress.ofLiteral("fd7a:115c:a1e0::1")).toString(),
                Type.PTR)));
    assertEquals(List.of("100.64.9.9"), answers(ask(at, "printer.lab.internal.", Type.A)));
    assertEquals(
        List.of("robot-1.lab.internal.", "100.64.0.1"),
        answers(ask(at, "rosmaster.lab.internal.", Type.A)));
    Message missing = ask(at, "robot-9.lab.internal.", Type.A);
    assertEquals(Rcode.NXDOMAIN, missing.getRcode());
    Message forwarded = ask(at, "www.campus.example.", Type.A);
    assertEquals(
        List.of("198.51.100.80"), answers(forwarded), "split DNS: the host's server answers");
    assertEquals(1, resolver.counters().forwarded.sum());

    // Garbage and oversized questions: dropped, counted, and the resolver keeps answering.
    try (DatagramSocket s = new DatagramSocket()) {
      s.setSoTimeout(500);
      byte[] junk = {1, 2, 3};
      s.send(new DatagramPacket(junk, junk.length, at));
      byte[] big = new byte[OverlayResolver.MAX_QUERY + 100];
      s.send(new DatagramPacket(big, big.length, at));
      byte[] in = new byte[512];
      boolean answered;
      try {
        s.receive(new DatagramPacket(in, in.length));
        answered = true;
      } catch (SocketTimeoutException e) {
        answered = false;
      }
      assertFalse(answered, "no answer to garbage");
    }
    assertEquals(List.of("100.64.0.2"), answers(ask(at, "robot-2.lab.internal.", Type.A)));
    assertEquals(1, resolver.counters().malformed.sum());
    assertEquals(1, resolver.counters().oversized.sum());
  }

  @Test
  void namesWithoutABaseDomainAreOff() {
    assertEquals(null, OverlayNames.of(null, null, List.of()));
  }

  @Test
  void resolvConfIsWrittenThenRestoredByteForByte(@TempDir Path dir) throws Exception {
    Path etc = Files.createDirectories(dir.resolve("etc"));
    Path state = Files.createDirectories(dir.resolve("state"));
    Path file = etc.resolve("resolv.conf");
    byte[] original =
        "# campus\nnameserver 198.18.10.53\nsearch campus.example\noptions ndots:1\n".getBytes();
    Files.write(file, original);
    ResolvConf rc = new ResolvConf(file, state);
    rc.apply(InetAddress.ofLiteral("100.100.100.100"), "lab.internal");
    String written = Files.readString(file);
    assertTrue(written.startsWith(ResolvConf.MARKER), written);
    assertTrue(written.contains("nameserver 100.100.100.100\n"), written);
    assertTrue(written.contains("search lab.internal campus.example\n"), written);
    assertTrue(written.contains("options ndots:1\n"), written);
    assertEquals(
        List.of(new InetSocketAddress(InetAddress.ofLiteral("198.18.10.53"), 53)), rc.upstream());
    rc.apply(
        InetAddress.ofLiteral("100.100.100.100"),
        "lab.internal"); // again: the backup stays the original
    // A killed agent: the next one's restore puts it back.
    new ResolvConf(file, state).restore();
    assertArrayEquals(original, Files.readAllBytes(file));
    assertFalse(Files.exists(state.resolve("resolv.conf.orig")));

    // A symlink (as systemd-resolved's stub) comes back as the same symlink.
    Path stub = Files.writeString(etc.resolve("stub-resolv.conf"), "nameserver 127.0.0.53\n");
    Files.delete(file);
    Files.createSymbolicLink(file, stub);
    rc.apply(InetAddress.ofLiteral("100.100.100.100"), "lab.internal");
    assertFalse(Files.isSymbolicLink(file));
    rc.restore();
    assertTrue(Files.isSymbolicLink(file));
    assertEquals(stub, Files.readSymbolicLink(file));
    assertEquals("nameserver 127.0.0.53\n", Files.readString(stub), "the stub itself untouched");

    // A file someone else rewrote meanwhile is left alone.
    Files.delete(file);
    Files.write(file, original);
    rc.apply(InetAddress.ofLiteral("100.100.100.100"), "lab.internal");
    Files.writeString(file, "nameserver 192.0.2.1\n");
    rc.restore();
    assertEquals("nameserver 192.0.2.1\n", Files.readString(file));
  }

  private static java.util.function.Supplier<OverlayNames> fixed(OverlayNames names) {
    return () -> names;
  }
}
