package dev.trellis.dataplane.wireguard;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/** Why packets were dropped: malformed or unauthenticated input is counted, never fatal. */
final class DeviceCounters {
  final LongAdder malformed = new LongAdder();
  final LongAdder unknownIndex = new LongAdder();
  final LongAdder decryptFailed = new LongAdder();
  final LongAdder replayed = new LongAdder();
  final LongAdder expiredSession = new LongAdder();
  final LongAdder disallowedSource = new LongAdder();
  final LongAdder noRoute = new LongAdder();
  final LongAdder badMac = new LongAdder();
  final LongAdder handshakeRejected = new LongAdder();
  final LongAdder handshakeQueueFull = new LongAdder();
  final LongAdder cookieRepliesSent = new LongAdder();
  final LongAdder stagedDropped = new LongAdder();
  final LongAdder tunnelWriteDropped = new LongAdder();

  /** Multicast from a peer that the {@link MulticastRouter} did not take. */
  final LongAdder multicastRefused = new LongAdder();

  /** Refused by the {@link InboundFilter} (the filter counts its own reasons). */
  final LongAdder filtered = new LongAdder();

  /** Every drop counter by its reason's name in the metrics (snake case). */
  Map<String, Long> byReason() {
    Map<String, Long> m = new LinkedHashMap<>();
    m.put("malformed", malformed.sum());
    m.put("unknown_index", unknownIndex.sum());
    m.put("decrypt_failed", decryptFailed.sum());
    m.put("replayed", replayed.sum());
    m.put("expired_session", expiredSession.sum());
    m.put("disallowed_source", disallowedSource.sum());
    m.put("no_route", noRoute.sum());
    m.put("bad_mac", badMac.sum());
    m.put("handshake_rejected", handshakeRejected.sum());
    m.put("handshake_queue_full", handshakeQueueFull.sum());
    m.put("staged_full", stagedDropped.sum());
    m.put("tunnel_write_failed", tunnelWriteDropped.sum());
    m.put("multicast_refused", multicastRefused.sum());
    m.put("policy", filtered.sum());
    return m;
  }

  @Override
  public String toString() {
    return "malformed="
        + malformed
        + " unknownIndex="
        + unknownIndex
        + " decryptFailed="
        + decryptFailed
        + " replayed="
        + replayed
        + " expiredSession="
        + expiredSession
        + " disallowedSource="
        + disallowedSource
        + " noRoute="
        + noRoute
        + " badMac="
        + badMac
        + " handshakeRejected="
        + handshakeRejected
        + " handshakeQueueFull="
        + handshakeQueueFull
        + " cookieRepliesSent="
        + cookieRepliesSent
        + " stagedDropped="
        + stagedDropped
        + " tunnelWriteDropped="
        + tunnelWriteDropped
        + " multicastRefused="
        + multicastRefused
        + " filtered="
        + filtered;
  }
}
