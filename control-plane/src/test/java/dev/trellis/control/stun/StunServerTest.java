package dev.trellis.control.stun;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.dataplane.stun.StunClient;
import dev.trellis.proto.stun.StunMessage;
import dev.trellis.proto.stun.StunMessage.Attribute;
import dev.trellis.proto.stun.StunMessage.MessageClass;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * The Binding server's answers (pure), and server and client over loopback sockets. The client's
 * own cases: {@code StunClientTest} in data-plane.
 */
class StunServerTest {
  private static final InetSocketAddress CLIENT_V4 =
      new InetSocketAddress(ip("198.51.100.9"), 40001);
  private static final InetSocketAddress CLIENT_V6 =
      new InetSocketAddress(ip("2001:db8::9"), 40002);
  private static final InetSocketAddress LOCAL = new InetSocketAddress(ip("0.0.0.0"), 3478);

  private static InetAddress ip(String s) {
    try {
      return InetAddress.getByName(s);
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  private static StunServer.Reply respond(byte[] request, InetSocketAddress client) {
    return StunServer.respond(request, request.length, client, LOCAL);
  }

  @Test
  void bindingRequestGetsXorMappedAddressSoftwareAndFingerprint() {
    StunMessage request = StunMessage.bindingRequest();
    for (InetSocketAddress client : List.of(CLIENT_V4, CLIENT_V6)) {
      byte[] wire = request.encode(false);
      StunServer.Reply reply = respond(wire, client);
      assertEquals(StunServer.Reply.Kind.SUCCESS, reply.kind());
      StunMessage response = StunMessage.parse(reply.bytes());
      assertEquals(MessageClass.SUCCESS_RESPONSE, response.messageClass());
      assertEquals(StunMessage.METHOD_BINDING, response.method());
      assertTrue(response.hasTransactionId(request.transactionId()));
      assertEquals(client, response.xorMappedAddress());
      assertNull(response.mappedAddress());
      assertEquals("trellis", response.software());
      assertTrue(response.fingerprinted());
      // No amplification: the answer is the request plus the address, SOFTWARE and FINGERPRINT.
      assertTrue(
          reply.bytes().length <= wire.length + 24 + 12 + 8,
          "response " + reply.bytes().length + " bytes");
    }
  }

  @Test
  void iceStyleRequestWithCredentialsIsAnswered() {
    // RFC 5769's sample request: USERNAME, PRIORITY, ICE-CONTROLLED, MESSAGE-INTEGRITY,
    // FINGERPRINT.
    byte[] wire =
        HexFormat.of()
            .parseHex(
                ("""
                000100582112a442b7e7a701bc34d686fa87dfae802200105354554e20746573
                7420636c69656e74002400046e0001ff80290008932ff9b151263b3600060009
                6576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249
                c1b571a280280004e57a3bcf""")
                    .replaceAll("\\s+", ""));
    StunServer.Reply reply = respond(wire, CLIENT_V4);
    assertEquals(StunServer.Reply.Kind.SUCCESS, reply.kind());
    assertEquals(CLIENT_V4, StunMessage.parse(reply.bytes()).xorMappedAddress());
  }

  @Test
  void unknownComprehensionRequiredAttributesGet420() {
    byte[] tid = StunMessage.newTransactionId();
    StunMessage request =
        new StunMessage(
            StunMessage.METHOD_BINDING,
            MessageClass.REQUEST,
            tid,
            List.of(
                new Attribute(0x7F01, new byte[3]),
                new Attribute(0xC001, new byte[4]), // optional: ignored
                new Attribute(
                    StunMessage.RESPONSE_ADDRESS, Attribute.mappedAddress(CLIENT_V6).value()),
                new Attribute(0x7F01, new byte[1])));
    StunServer.Reply reply = respond(request.encode(true), CLIENT_V4);
    assertEquals(StunServer.Reply.Kind.ERROR, reply.kind());
    StunMessage error = StunMessage.parse(reply.bytes());
    assertEquals(MessageClass.ERROR_RESPONSE, error.messageClass());
    assertTrue(error.hasTransactionId(tid));
    assertEquals(420, error.errorCode().code());
    assertEquals(List.of(0x7F01, StunMessage.RESPONSE_ADDRESS), error.unknownAttributes());
    assertTrue(error.fingerprinted());
    assertNull(error.xorMappedAddress());
  }

  @Test
  void changeRequestIsHonouredOnlyWhenItAsksForNoChange() {
    for (int flags : new int[] {0, 2, 4, 6}) {
      StunMessage request =
          new StunMessage(
              StunMessage.METHOD_BINDING,
              MessageClass.REQUEST,
              StunMessage.newTransactionId(),
              List.of(
                  new Attribute(StunMessage.CHANGE_REQUEST, new byte[] {0, 0, 0, (byte) flags})));
      StunServer.Reply reply = respond(request.encode(false), CLIENT_V4);
      StunMessage response = StunMessage.parse(reply.bytes());
      if (flags == 0) {
        assertEquals(CLIENT_V4, response.xorMappedAddress());
      } else {
        assertEquals(420, response.errorCode().code(), "flags " + flags);
        assertEquals(List.of(StunMessage.CHANGE_REQUEST), response.unknownAttributes());
      }
    }
  }

  @Test
  void rfc3489ClientsGetMappedAddressAndTheirCookieFieldBack() {
    // A classic request: 128-bit transaction id, no magic cookie, CHANGE-REQUEST with no flags.
    byte[] wire =
        HexFormat.of().parseHex("0001000801020304a1a2a3a4a5a6a7a8a9aaabac0003000400000000");
    StunServer.Reply reply = respond(wire, CLIENT_V4);
    assertEquals(StunServer.Reply.Kind.CLASSIC_SUCCESS, reply.kind());
    StunMessage response = StunMessage.parse(reply.bytes());
    assertTrue(response.isClassic());
    assertEquals(0x01020304, response.cookie());
    assertEquals(MessageClass.SUCCESS_RESPONSE, response.messageClass());
    assertEquals(CLIENT_V4, response.mappedAddress());
    assertNull(response.xorMappedAddress());
    assertNotNull(response.attribute(StunMessage.SOURCE_ADDRESS));
    assertNotNull(response.attribute(StunMessage.CHANGED_ADDRESS));
    assertFalse(response.fingerprinted());

    byte[] change = wire.clone();
    change[wire.length - 1] = 6;
    StunMessage error = StunMessage.parse(respond(change, CLIENT_V4).bytes());
    assertEquals(420, error.errorCode().code());
    assertEquals(List.of(3, 3), error.unknownAttributes()); // RFC 3489: padded by repetition
  }

  @Test
  void everythingElseIsDropped() {
    byte[] tid = StunMessage.newTransactionId();
    List<byte[]> drops = new ArrayList<>();
    drops.add(new byte[0]);
    drops.add("hello, this is not STUN at all".getBytes());
    drops.add(
        new StunMessage(1, MessageClass.SUCCESS_RESPONSE, tid, List.of())
            .encode(true)); // no reflection loops
    drops.add(new StunMessage(1, MessageClass.ERROR_RESPONSE, tid, List.of()).encode(true));
    drops.add(new StunMessage(1, MessageClass.INDICATION, tid, List.of()).encode(true));
    drops.add(
        new StunMessage(3, MessageClass.REQUEST, tid, List.of()).encode(true)); // TURN Allocate
    byte[] badFingerprint = StunMessage.bindingRequest().encode(true);
    badFingerprint[badFingerprint.length - 1] ^= 1;
    drops.add(badFingerprint);
    byte[] wireguard = new byte[148];
    wireguard[0] = 1; // a WireGuard handshake initiation
    drops.add(wireguard);
    for (byte[] d : drops) {
      StunServer.Reply reply = respond(d, CLIENT_V4);
      assertEquals(StunServer.Reply.Kind.DROP, reply.kind());
      assertNull(reply.bytes());
    }
    Random random = new Random(3478);
    for (int i = 0; i < 50_000; i++) {
      byte[] junk = new byte[random.nextInt(64)];
      random.nextBytes(junk);
      StunServer.Reply reply = respond(junk, CLIENT_V6);
      if (reply.bytes() != null) {
        assertTrue(reply.bytes().length <= junk.length + 24 + 12 + 8 + 24);
      }
    }
  }

  @Test
  void serverAndClientOverLoopback() throws Exception {
    List<InetSocketAddress> answered = new CopyOnWriteArrayList<>();
    try (StunServer server = StunServer.start(new InetSocketAddress("0.0.0.0", 0), answered::add)) {
      assertTrue(server.port() > 0);
      try (DatagramChannel channel = DatagramChannel.open(StandardProtocolFamily.INET)) {
        channel.bind(new InetSocketAddress("127.0.0.1", 0));
        InetSocketAddress mine = (InetSocketAddress) channel.getLocalAddress();
        assertEquals(
            mine,
            StunClient.bindingRequest(
                channel, new InetSocketAddress("127.0.0.1", server.port()), Duration.ofSeconds(5)));
        // Non-blocking caller channel too.
        channel.configureBlocking(false);
        assertEquals(
            mine,
            StunClient.bindingRequest(
                channel, new InetSocketAddress("127.0.0.1", server.port()), Duration.ofSeconds(5)));
      }
      InetSocketAddress mapped =
          StunClient.bindingRequest(
              new InetSocketAddress("127.0.0.1", server.port()), Duration.ofSeconds(5));
      assertEquals(ip("127.0.0.1"), mapped.getAddress());
      // IPv6 on the same dual-stack socket, where the host has IPv6 loopback.
      boolean v6 = false;
      try (DatagramChannel probe = DatagramChannel.open(StandardProtocolFamily.INET6)) {
        probe.bind(new InetSocketAddress("::1", 0));
        v6 = true;
      } catch (IOException | UnsupportedOperationException noIpv6) {
        System.out.println("StunServerTest: no IPv6 loopback here, IPv6 case skipped");
      }
      if (v6) {
        InetSocketAddress mapped6 =
            StunClient.bindingRequest(
                new InetSocketAddress("::1", server.port()), Duration.ofSeconds(5));
        assertEquals(ip("::1"), mapped6.getAddress());
      }
      // Garbage is counted, not answered.
      try (DatagramChannel junk = DatagramChannel.open(StandardProtocolFamily.INET)) {
        junk.send(
            ByteBuffer.wrap("GET / HTTP/1.0\r\n\r\n".getBytes()),
            new InetSocketAddress("127.0.0.1", server.port()));
      }
      long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
      while (server.counters().dropped() < 1 && System.nanoTime() < deadline) {
        Thread.sleep(10);
      }
      StunServer.Counters c = server.counters();
      assertEquals(1, c.dropped(), c.toString());
      assertEquals(v6 ? 4 : 3, c.bindingResponses(), c.toString());
      assertEquals(v6 ? 4 : 3, answered.size());
    }
  }

  @Test
  void bindFailureNamesTheAddress() throws Exception {
    try (StunServer first = StunServer.start(new InetSocketAddress("127.0.0.1", 0))) {
      IOException e =
          assertThrows(
              IOException.class,
              () -> StunServer.start(new InetSocketAddress("127.0.0.1", first.port())));
      assertTrue(e.getMessage().contains("127.0.0.1:" + first.port()), e.getMessage());
    }
  }
}
