package dev.trellis.control.multicast;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.trellis.proto.control.ControlMessage;
import org.junit.jupiter.api.Test;

/** {@code trellis.multicast}: defaults, off, limits, and bad values refused naming their key. */
class MulticastSettingsTest {
  private static ControlMessage.MulticastInfo parse(String hocon) {
    return MulticastSettings.from(
        ConfigFactory.parseString(hocon)
            .withFallback(ConfigFactory.defaultReference())
            .resolve()
            .getConfig("trellis"));
  }

  @Test
  void onByDefaultWithLimitsOffWhenSaid() {
    assertEquals(new ControlMessage.MulticastInfo(500, 2 * 1024 * 1024), parse(""));
    assertEquals(
        new ControlMessage.MulticastInfo(50, 64_000),
        parse("trellis.multicast { packets-per-second = 50, bytes-per-second = 64000 }"));
    assertNull(parse("trellis.multicast.enabled = false"));
  }

  @Test
  void badLimitsAreRefusedNamingTheirKey() {
    for (String[] c :
        new String[][] {
          {"packets-per-second = 0", "packets-per-second"},
          {"packets-per-second = -5", "packets-per-second"},
          {"bytes-per-second = 0", "bytes-per-second"},
          {"bytes-per-second = 5 GiB", "bytes-per-second"},
        }) {
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class, () -> parse("trellis.multicast { " + c[0] + " }"));
      assertTrue(e.getMessage().contains("trellis.multicast." + c[1]), e.getMessage());
    }
  }
}
