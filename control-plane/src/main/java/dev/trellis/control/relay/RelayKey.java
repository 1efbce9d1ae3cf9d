package dev.trellis.control.relay;

import dev.trellis.proto.relay.RelayFrame;
import java.util.Base64;
import org.apache.pekko.util.ByteString;

/** A 32-byte node key as four longs: cheap to hash and compare on the forwarding path. */
record RelayKey(long a, long b, long c, long d) {

  static RelayKey of(byte[] key) {
    if (key.length != RelayFrame.KEY_LENGTH) {
      throw new IllegalArgumentException("key must be 32 bytes");
    }
    return new RelayKey(longAt(key, 0), longAt(key, 8), longAt(key, 16), longAt(key, 24));
  }

  /** The key at {@code offset} in a frame, read without copying the frame. */
  static RelayKey of(ByteString frame, int offset) {
    return new RelayKey(
        longAt(frame, offset),
        longAt(frame, offset + 8),
        longAt(frame, offset + 16),
        longAt(frame, offset + 24));
  }

  byte[] bytes() {
    byte[] out = new byte[32];
    put(out, 0, a);
    put(out, 8, b);
    put(out, 16, c);
    put(out, 24, d);
    return out;
  }

  String base64() {
    return Base64.getEncoder().encodeToString(bytes());
  }

  @Override
  public String toString() {
    return base64();
  }

  private static long longAt(byte[] k, int o) {
    long v = 0;
    for (int i = 0; i < 8; i++) {
      v = (v << 8) | (k[o + i] & 0xffL);
    }
    return v;
  }

  private static long longAt(ByteString k, int o) {
    long v = 0;
    for (int i = 0; i < 8; i++) {
      v = (v << 8) | (k.apply(o + i) & 0xffL);
    }
    return v;
  }

  private static void put(byte[] out, int o, long v) {
    for (int i = 7; i >= 0; i--) {
      out[o + i] = (byte) v;
      v >>>= 8;
    }
  }
}
