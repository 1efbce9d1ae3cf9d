package dev.trellis.proto.wireguard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class MessageTest {
  private final Random random = new Random(42);

  private byte[] bytes(int n) {
    byte[] b = new byte[n];
    random.nextBytes(b);
    return b;
  }

  private Message.HandshakeInitiation initiation() {
    return new Message.HandshakeInitiation(
        0x8765_4321, bytes(32), bytes(48), bytes(28), bytes(16), bytes(16));
  }

  private Message.HandshakeResponse response() {
    return new Message.HandshakeResponse(
        0x0102_0304, 0xfedc_ba98, bytes(32), bytes(16), bytes(16), bytes(16));
  }

  private Message.CookieReply cookieReply() {
    return new Message.CookieReply(0xdead_beef, bytes(24), bytes(32));
  }

  private Message.TransportData transport(int payload) {
    return new Message.TransportData(0x7fff_0001, 0xf0e1_d2c3_b4a5_9687L, bytes(payload + 16));
  }

  @Test
  void initiationRoundTripsWithExactLayout() {
    Message.HandshakeInitiation m = initiation();
    byte[] wire = m.encode();
    assertEquals(148, wire.length);
    assertEquals(Message.INITIATION_LENGTH, wire.length);
    assertArrayEquals(new byte[] {1, 0, 0, 0}, Arrays.copyOf(wire, 4));
    // little-endian sender
    assertArrayEquals(new byte[] {0x21, 0x43, 0x65, (byte) 0x87}, Arrays.copyOfRange(wire, 4, 8));
    assertArrayEquals(m.ephemeral(), Arrays.copyOfRange(wire, 8, 40));
    assertArrayEquals(
        m.mac1(), Arrays.copyOfRange(wire, Message.HandshakeInitiation.OFFSET_MAC1, 132));
    assertArrayEquals(
        m.mac2(), Arrays.copyOfRange(wire, Message.HandshakeInitiation.OFFSET_MAC2, 148));
    assertEquals(Message.TYPE_INITIATION, Message.typeOf(wire, 0, wire.length));

    Message.HandshakeInitiation back = Message.HandshakeInitiation.parse(wire, 0, wire.length);
    assertNotNull(back);
    assertEquals(m.sender(), back.sender());
    assertArrayEquals(m.ephemeral(), back.ephemeral());
    assertArrayEquals(m.encryptedStatic(), back.encryptedStatic());
    assertArrayEquals(m.encryptedTimestamp(), back.encryptedTimestamp());
    assertArrayEquals(m.mac1(), back.mac1());
    assertArrayEquals(m.mac2(), back.mac2());
    assertArrayEquals(wire, back.encode());
  }

  @Test
  void responseRoundTripsWithExactLayout() {
    Message.HandshakeResponse m = response();
    byte[] wire = m.encode();
    assertEquals(92, wire.length);
    assertArrayEquals(new byte[] {2, 0, 0, 0}, Arrays.copyOf(wire, 4));
    assertArrayEquals(new byte[] {4, 3, 2, 1}, Arrays.copyOfRange(wire, 4, 8));
    assertArrayEquals(
        new byte[] {(byte) 0x98, (byte) 0xba, (byte) 0xdc, (byte) 0xfe},
        Arrays.copyOfRange(wire, 8, 12));
    assertArrayEquals(
        m.mac1(), Arrays.copyOfRange(wire, Message.HandshakeResponse.OFFSET_MAC1, 76));
    assertArrayEquals(
        m.mac2(), Arrays.copyOfRange(wire, Message.HandshakeResponse.OFFSET_MAC2, 92));
    Message.HandshakeResponse back = Message.HandshakeResponse.parse(wire, 0, wire.length);
    assertNotNull(back);
    assertEquals(m.sender(), back.sender());
    assertEquals(m.receiver(), back.receiver());
    assertArrayEquals(m.ephemeral(), back.ephemeral());
    assertArrayEquals(m.encryptedNothing(), back.encryptedNothing());
    assertArrayEquals(m.mac1(), back.mac1());
    assertArrayEquals(m.mac2(), back.mac2());
    assertArrayEquals(wire, back.encode());
  }

  @Test
  void cookieReplyRoundTripsWithExactLayout() {
    Message.CookieReply m = cookieReply();
    byte[] wire = m.encode();
    assertEquals(64, wire.length);
    assertArrayEquals(new byte[] {3, 0, 0, 0}, Arrays.copyOf(wire, 4));
    assertArrayEquals(
        new byte[] {(byte) 0xef, (byte) 0xbe, (byte) 0xad, (byte) 0xde},
        Arrays.copyOfRange(wire, 4, 8));
    Message.CookieReply back = Message.CookieReply.parse(wire, 0, wire.length);
    assertNotNull(back);
    assertEquals(m.receiver(), back.receiver());
    assertArrayEquals(m.nonce(), back.nonce());
    assertArrayEquals(m.encryptedCookie(), back.encryptedCookie());
    assertArrayEquals(wire, back.encode());
  }

  @Test
  void transportRoundTripsForKeepaliveAndData() {
    for (int payload : new int[] {0, 16, 1424}) {
      Message.TransportData m = transport(payload);
      byte[] wire = m.encode();
      assertEquals(32 + payload, wire.length);
      assertArrayEquals(new byte[] {4, 0, 0, 0}, Arrays.copyOf(wire, 4));
      // little-endian 64-bit counter
      assertArrayEquals(
          new byte[] {
            (byte) 0x87,
            (byte) 0x96,
            (byte) 0xa5,
            (byte) 0xb4,
            (byte) 0xc3,
            (byte) 0xd2,
            (byte) 0xe1,
            (byte) 0xf0
          },
          Arrays.copyOfRange(wire, 8, 16));
      Message.TransportData back = Message.TransportData.parse(wire, 0, wire.length);
      assertNotNull(back);
      assertEquals(m.receiver(), back.receiver());
      assertEquals(m.counter(), back.counter());
      assertArrayEquals(m.encryptedPacket(), back.encryptedPacket());
      assertArrayEquals(wire, back.encode());
    }
    assertEquals(32, Message.TRANSPORT_MIN_LENGTH);
  }

  @Test
  void parseHonoursOffsetIntoLargerBuffer() {
    byte[] wire = initiation().encode();
    byte[] big = new byte[wire.length + 10];
    System.arraycopy(wire, 0, big, 7, wire.length);
    Message.HandshakeInitiation back = Message.HandshakeInitiation.parse(big, 7, wire.length);
    assertNotNull(back);
    assertArrayEquals(wire, back.encode());
  }

  @Test
  void encodeRejectsWrongFieldSizes() {
    assertThrows(
        IllegalArgumentException.class,
        () ->
            new Message.HandshakeInitiation(
                    1, new byte[31], new byte[48], new byte[28], new byte[16], new byte[16])
                .encode());
    assertThrows(
        IllegalArgumentException.class,
        () -> new Message.CookieReply(1, new byte[23], new byte[32]).encode());
  }

  private record Case(byte[] wire, int type, Function<byte[], Message> parser) {}

  private List<Case> cases() {
    return List.of(
        new Case(
            initiation().encode(),
            Message.TYPE_INITIATION,
            b -> Message.HandshakeInitiation.parse(b, 0, b.length)),
        new Case(
            response().encode(),
            Message.TYPE_RESPONSE,
            b -> Message.HandshakeResponse.parse(b, 0, b.length)),
        new Case(
            cookieReply().encode(),
            Message.TYPE_COOKIE_REPLY,
            b -> Message.CookieReply.parse(b, 0, b.length)),
        new Case(
            transport(0).encode(),
            Message.TYPE_TRANSPORT,
            b -> Message.TransportData.parse(b, 0, b.length)));
  }

  @Test
  void everyTruncationIsRejectedWithoutThrowing() {
    for (Case c : cases()) {
      for (int len = 0; len < c.wire().length; len++) {
        byte[] cut = Arrays.copyOf(c.wire(), len);
        int l = len;
        assertEquals(-1, Message.typeOf(c.wire(), 0, l), "typeOf type " + c.type() + " len " + l);
        Message parsed =
            assertDoesNotThrow(() -> c.parser().apply(cut), "type " + c.type() + " len " + l);
        assertNull(parsed, "type " + c.type() + " truncated to " + l);
      }
      assertEquals(c.type(), Message.typeOf(c.wire(), 0, c.wire().length));
    }
  }

  @Test
  void oversizedHandshakeMessagesAreRejected() {
    for (Case c : cases()) {
      byte[] longer = Arrays.copyOf(c.wire(), c.wire().length + 1);
      if (c.type() == Message.TYPE_TRANSPORT) {
        // transport messages have variable length
        assertEquals(Message.TYPE_TRANSPORT, Message.typeOf(longer, 0, longer.length));
        continue;
      }
      assertEquals(-1, Message.typeOf(longer, 0, longer.length));
      assertNull(assertDoesNotThrow(() -> c.parser().apply(longer)));
      byte[] huge = Arrays.copyOf(c.wire(), 65000);
      assertNull(assertDoesNotThrow(() -> c.parser().apply(huge)));
    }
  }

  @Test
  void nonZeroReservedBytesAreRejected() {
    for (Case c : cases()) {
      for (int i = 1; i <= 3; i++) {
        for (int bit = 0; bit < 8; bit++) {
          byte[] bad = c.wire().clone();
          bad[i] ^= (byte) (1 << bit);
          assertEquals(
              -1, Message.typeOf(bad, 0, bad.length), "reserved byte " + i + " bit " + bit);
          assertNull(assertDoesNotThrow(() -> c.parser().apply(bad)));
        }
      }
    }
  }

  @Test
  void unknownAndMismatchedTypesAreRejected() {
    for (Case c : cases()) {
      for (int t = -128; t < 128; t++) {
        byte[] bad = c.wire().clone();
        bad[0] = (byte) t;
        int expected =
            switch (t) {
              case 1 -> bad.length == 148 ? 1 : -1;
              case 2 -> bad.length == 92 ? 2 : -1;
              case 3 -> bad.length == 64 ? 3 : -1;
              case 4 -> bad.length >= 32 ? 4 : -1;
              default -> -1;
            };
        assertEquals(
            expected,
            Message.typeOf(bad, 0, bad.length),
            "type byte " + t + " at length " + bad.length);
        if (t != c.type()) {
          assertNull(assertDoesNotThrow(() -> c.parser().apply(bad)), "type byte " + t);
        }
      }
    }
  }

  @Test
  void parsersRejectEachOthersMessages() {
    for (Case wireCase : cases()) {
      for (Case parserCase : cases()) {
        Message parsed = parserCase.parser().apply(wireCase.wire());
        if (wireCase.type() == parserCase.type()) {
          assertNotNull(parsed);
        } else {
          assertNull(
              parsed, "parser of type " + parserCase.type() + " accepted type " + wireCase.type());
        }
      }
    }
  }

  @Test
  void randomGarbageNeverThrows() {
    for (int i = 0; i < 20_000; i++) {
      byte[] junk = bytes(random.nextInt(200));
      if (junk.length > 0 && random.nextBoolean()) {
        junk[0] = (byte) (1 + random.nextInt(4));
      }
      assertDoesNotThrow(
          () -> {
            Message.typeOf(junk, 0, junk.length);
            for (Case c : cases()) {
              c.parser().apply(junk);
            }
          });
    }
  }
}
