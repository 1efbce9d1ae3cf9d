package dev.trellis.dataplane.wireguard;

import dev.trellis.proto.wireguard.Keypair;
import java.security.SecureRandom;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Maps the random 32-bit receiver indices we hand out to what they name: a handshake in progress,
 * then the keypair it became. Random so an observer cannot count our sessions.
 */
final class IndexTable {
  /** A handshake's entry has a null keypair; a session's has one. */
  record Entry(Peer peer, Keypair keypair) {}

  private final ConcurrentHashMap<Integer, Entry> entries = new ConcurrentHashMap<>();
  private final SecureRandom random = new SecureRandom();

  int registerHandshake(Peer peer) {
    while (true) {
      int index = random.nextInt();
      // 0 stands for "no index" in the handshake state.
      if (index != 0 && entries.putIfAbsent(index, new Entry(peer, null)) == null) {
        return index;
      }
    }
  }

  void swapInKeypair(Keypair keypair, Peer peer) {
    entries.put(keypair.localIndex(), new Entry(peer, keypair));
  }

  Entry lookup(int index) {
    return entries.get(index);
  }

  void remove(int index) {
    entries.remove(index);
  }

  void removeAll(Peer peer) {
    entries.values().removeIf(e -> e.peer() == peer);
  }

  int size() {
    return entries.size();
  }
}
