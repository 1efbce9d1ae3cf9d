package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetSocketAddress;
import java.util.List;
import org.junit.jupiter.api.Test;

/** One peer's probing pace and direct-path timeout, active and quiet, on a clock of our own. */
class PeerPathTest {
  private static final long S = 1_000_000_000L;
  private static final InetSocketAddress ENDPOINT = new InetSocketAddress("198.18.0.2", 41641);

  /** A path that went direct at {@code t} (a pong from its endpoint). */
  private static PeerPath directAt(long t) {
    PeerPath p = new PeerPath(new byte[32], new byte[32], "robot-2");
    p.setCandidates(List.of(ENDPOINT));
    p.probesDue(t); // the first probe
    assertEquals(PeerPath.Change.NOW_DIRECT, p.onPong(ENDPOINT, 1_000_000, t, true));
    return p;
  }

  @Test
  void aPeerWeSendNothingToIsProbedAndTimedOutAtTheQuietPace() {
    long t = 1_000 * S;
    PeerPath p = directAt(t);
    assertTrue(p.quiet(t), "no data sent yet");
    assertEquals(List.of(), p.probesDue(t + 2 * S), "not every second while quiet");
    assertEquals(List.of(ENDPOINT), p.probesDue(t + 10 * S));
    assertNull(p.expireDirect(t + 20 * S), "missing a quiet probe's pong for 20 s is fine");
    assertEquals(ENDPOINT, p.expireDirect(t + 36 * S), "three missed quiet probes end it");
    assertNull(p.direct());
  }

  @Test
  void dataMakesItActiveAtOnceAndTheActiveTimeoutCountsFromThen() {
    long t = 1_000 * S;
    PeerPath p = directAt(t);
    long resume = t + 8 * S; // last pong 8 s ago, more than the active timeout
    p.dataSent();
    assertTrue(p.noteActivity(resume), "quiet -> active");
    assertFalse(p.quiet(resume));
    assertEquals(List.of(ENDPOINT), p.probesDue(resume), "probed at once");
    assertNull(p.expireDirect(resume + S), "the old pong does not end it at once");
    assertEquals(List.of(), p.probesDue(resume + S / 2));
    assertEquals(List.of(ENDPOINT), p.probesDue(resume + S), "every second while active");

    p.dataSent();
    assertFalse(p.noteActivity(resume + 2 * S), "still active: nothing new");
    assertEquals(PeerPath.Change.NONE, p.onPong(ENDPOINT, 1_000_000, resume + 2 * S, true));
    assertNull(p.expireDirect(resume + 5 * S));
    assertEquals(ENDPOINT, p.expireDirect(resume + 6 * S), "3.5 s without a pong while active");
  }

  @Test
  void withoutDataForFortyFiveSecondsItTurnsQuietAgain() {
    long t = 1_000 * S;
    PeerPath p = directAt(t);
    p.dataSent();
    p.noteActivity(t);
    assertFalse(p.quiet(t + 44 * S));
    assertTrue(p.quiet(t + 46 * S));
    assertFalse(p.noteActivity(t + 46 * S), "no data marked: no change");
  }
}
