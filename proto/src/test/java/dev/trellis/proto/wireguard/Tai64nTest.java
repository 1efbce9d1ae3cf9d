package dev.trellis.proto.wireguard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.time.Instant;
import org.junit.jupiter.api.Test;

class Tai64nTest {

  @Test
  void encodesUnixEpoch() {
    byte[] stamp = Tai64n.of(Instant.EPOCH);
    assertEquals(Tai64n.SIZE, stamp.length);
    assertArrayEquals(new byte[] {0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0}, stamp);
  }

  @Test
  void encodesSecondsAndWhitenedNanosBigEndian() {
    Instant t = Instant.ofEpochSecond(1_700_000_000L, 123_456_789);
    ByteBuffer b = ByteBuffer.wrap(Tai64n.of(t));
    assertEquals((1L << 62) + 10 + 1_700_000_000L, b.getLong());
    int nanos = b.getInt();
    assertEquals(0, nanos % Tai64n.WHITENING_NANOS);
    assertEquals(123_456_789 / Tai64n.WHITENING_NANOS * Tai64n.WHITENING_NANOS, nanos);
  }

  @Test
  void whiteningHidesSubIntervalDifferences() {
    Instant a = Instant.ofEpochSecond(1000, 0);
    Instant b = Instant.ofEpochSecond(1000, Tai64n.WHITENING_NANOS - 1);
    Instant c = Instant.ofEpochSecond(1000, Tai64n.WHITENING_NANOS);
    assertArrayEquals(Tai64n.of(a), Tai64n.of(b));
    assertTrue(Tai64n.isAfter(Tai64n.of(c), Tai64n.of(b)));
  }

  @Test
  void largestNanosStayBelowOneSecond() {
    ByteBuffer b = ByteBuffer.wrap(Tai64n.of(Instant.ofEpochSecond(5, 999_999_999)));
    b.getLong();
    int nanos = b.getInt();
    assertTrue(nanos >= 0 && nanos < 1_000_000_000);
  }

  @Test
  void compareOrdersByTime() {
    byte[] early = Tai64n.of(Instant.ofEpochSecond(1_000, 500_000_000));
    byte[] sameSecondLater = Tai64n.of(Instant.ofEpochSecond(1_000, 900_000_000));
    byte[] nextSecond = Tai64n.of(Instant.ofEpochSecond(1_001, 0));
    assertTrue(Tai64n.compare(early, sameSecondLater) < 0);
    assertTrue(Tai64n.compare(sameSecondLater, nextSecond) < 0);
    assertTrue(Tai64n.compare(nextSecond, early) > 0);
    assertEquals(0, Tai64n.compare(early, early.clone()));
  }

  @Test
  void compareIsUnsigned() {
    byte[] low = new byte[Tai64n.SIZE];
    byte[] high = new byte[Tai64n.SIZE];
    low[11] = 0x7f;
    high[11] = (byte) 0x80;
    assertTrue(Tai64n.compare(low, high) < 0);
    assertTrue(Tai64n.isAfter(high, low));
  }

  @Test
  void isAfterIsStrict() {
    byte[] t = Tai64n.of(Instant.ofEpochSecond(42));
    assertFalse(Tai64n.isAfter(t, t.clone()));
    assertFalse(Tai64n.isAfter(t, Tai64n.of(Instant.ofEpochSecond(43))));
    assertTrue(Tai64n.isAfter(Tai64n.of(Instant.ofEpochSecond(43)), t));
  }

  @Test
  void beforeEpochStillOrders() {
    byte[] before = Tai64n.of(Instant.ofEpochSecond(-1));
    assertTrue(Tai64n.isAfter(Tai64n.of(Instant.EPOCH), before));
  }

  @Test
  void nowIsCurrentAndNotBehindEarlierStamp() {
    byte[] earlier = Tai64n.of(Instant.now().minusSeconds(1));
    byte[] now = Tai64n.now();
    assertTrue(Tai64n.isAfter(now, earlier));
    long seconds = ByteBuffer.wrap(now).getLong() - (1L << 62) - 10;
    assertTrue(Math.abs(seconds - Instant.now().getEpochSecond()) <= 2);
  }

  @Test
  void rejectsWrongLength() {
    assertThrows(IllegalArgumentException.class, () -> Tai64n.compare(new byte[11], new byte[12]));
    assertThrows(IllegalArgumentException.class, () -> Tai64n.isAfter(new byte[12], new byte[13]));
  }
}
