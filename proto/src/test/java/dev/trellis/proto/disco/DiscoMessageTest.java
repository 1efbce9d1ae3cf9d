package dev.trellis.proto.disco;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.trellis.proto.wireguard.Curve25519;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class DiscoMessageTest {
  private final byte[] aPrivate = Curve25519.generatePrivateKey();
  private final byte[] aPublic = Curve25519.publicKey(aPrivate);
  private final byte[] bPrivate = Curve25519.generatePrivateKey();
  private final byte[] bPublic = Curve25519.publicKey(bPrivate);
  private final byte[] keyAtA = DiscoMessage.sharedKey(aPrivate, bPublic);
  private final byte[] keyAtB = DiscoMessage.sharedKey(bPrivate, aPublic);

  @Test
  void bothSidesDeriveTheSameKeyAndMessagesRoundTrip() {
    assertArrayEquals(keyAtA, keyAtB);
    byte[] txid = DiscoMessage.newTxid();
    for (DiscoMessage m :
        List.of(
            new DiscoMessage.Ping(txid),
            new DiscoMessage.Pong(txid, "198.51.100.7:41641"),
            new DiscoMessage.CallMeMaybe(List.of("198.51.100.7:41641", "[2001:db8::1]:41641")))) {
      byte[] sealed = DiscoMessage.seal(m, aPublic, keyAtA);
      assertArrayEquals(aPublic, DiscoMessage.senderOf(sealed, sealed.length));
      DiscoMessage.Opened opened = DiscoMessage.open(sealed, sealed.length, keyAtB);
      assertArrayEquals(aPublic, opened.sender());
      switch (opened.message()) {
        case DiscoMessage.Ping p -> assertArrayEquals(txid, p.txid());
        case DiscoMessage.Pong p -> {
          assertArrayEquals(txid, p.txid());
          assertEquals("198.51.100.7:41641", p.observedSource());
        }
        case DiscoMessage.CallMeMaybe c ->
            assertEquals(((DiscoMessage.CallMeMaybe) m).endpoints(), c.endpoints());
      }
    }
  }

  @Test
  void forgedTamperedOrTruncatedMessagesDoNotOpen() {
    byte[] sealed =
        DiscoMessage.seal(new DiscoMessage.Ping(DiscoMessage.newTxid()), aPublic, keyAtA);
    // A third node cannot make or read them.
    byte[] cPrivate = Curve25519.generatePrivateKey();
    assertNull(DiscoMessage.open(sealed, sealed.length, DiscoMessage.sharedKey(cPrivate, aPublic)));
    for (int i = 0; i < sealed.length; i++) {
      byte[] bad = sealed.clone();
      bad[i] ^= 0x01;
      assertNull(DiscoMessage.open(bad, bad.length, keyAtB), "flipped byte " + i);
    }
    for (int len = 0; len < sealed.length; len++) {
      assertNull(DiscoMessage.open(sealed, len, keyAtB), "truncated to " + len);
    }
    Random random = new Random(7);
    for (int i = 0; i < 1000; i++) {
      byte[] junk = new byte[random.nextInt(200)];
      random.nextBytes(junk);
      assertNull(DiscoMessage.open(junk, junk.length, keyAtB));
    }
    assertInstanceOf(
        DiscoMessage.Ping.class, DiscoMessage.open(sealed, sealed.length, keyAtB).message());
  }
}
