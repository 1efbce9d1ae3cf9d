package dev.trellis.dataplane.wireguard;

import dev.trellis.proto.wireguard.Cookie;
import dev.trellis.proto.wireguard.Handshake;
import dev.trellis.proto.wireguard.Keypair;
import dev.trellis.proto.wireguard.Message;
import java.net.InetSocketAddress;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Handshake messages from the socket, processed on the control thread so Diffie-Hellman work never
 * stalls the packet paths. When the backlog reaches {@link #UNDER_LOAD_BACKLOG} we are "under
 * load": initiations and responses then need a valid MAC2, and get a cookie reply instead of DH
 * work.
 */
final class HandshakeProcessor {
  static final int MAX_BACKLOG = 1024;
  static final int UNDER_LOAD_BACKLOG = MAX_BACKLOG / 8;

  private final Device device;
  private final AtomicInteger backlog = new AtomicInteger();

  HandshakeProcessor(Device device) {
    this.device = device;
  }

  /**
   * From an inbound path: {@code message} is a private copy of a handshake-type message; {@code
   * source} is null when it came through another transport (a relay).
   */
  void enqueue(byte[] message, InetSocketAddress source) {
    int waiting = backlog.incrementAndGet();
    if (waiting > MAX_BACKLOG) {
      backlog.decrementAndGet();
      device.counters().handshakeQueueFull.increment();
      return;
    }
    boolean underLoad = waiting >= UNDER_LOAD_BACKLOG;
    device.runOnControlThread(
        () -> {
          backlog.decrementAndGet();
          process(message, source, underLoad);
        });
  }

  /** Control thread. */
  void process(byte[] msg, InetSocketAddress source, boolean underLoad) {
    int type = Message.typeOf(msg, 0, msg.length);
    long now = System.nanoTime();
    if (type == Message.TYPE_COOKIE_REPLY) {
      consumeCookieReply(msg, now);
      return;
    }
    Cookie.Checker checker = device.cookieChecker();
    if (checker == null || (type != Message.TYPE_INITIATION && type != Message.TYPE_RESPONSE)) {
      device.counters().malformed.increment();
      return;
    }
    if (!checker.checkMac1(msg, 0, msg.length)) {
      device.counters().badMac.increment();
      return;
    }
    // Cookies prove an IP address; relayed messages have none (the relay authenticated the node).
    if (underLoad
        && source != null
        && !checker.checkMac2(msg, 0, msg.length, sourceBytes(source), now)) {
      int sender = Message.readInt(msg, 4);
      Message.CookieReply reply =
          checker.createReply(msg, 0, msg.length, sender, sourceBytes(source), now);
      byte[] wire = reply.encode();
      device.sendDatagram(wire, wire.length, source);
      device.counters().cookieRepliesSent.increment();
      return;
    }
    if (type == Message.TYPE_INITIATION) {
      consumeInitiation(
          Message.HandshakeInitiation.parse(msg, 0, msg.length), msg.length, source, now);
    } else {
      consumeResponse(Message.HandshakeResponse.parse(msg, 0, msg.length), msg.length, source, now);
    }
  }

  private void consumeInitiation(
      Message.HandshakeInitiation msg, int length, InetSocketAddress source, long now) {
    byte[] ourPrivate = device.privateKeyRaw();
    byte[] ourPublic = device.publicKeyRaw();
    if (ourPrivate == null) {
      return;
    }
    Handshake.InitiationOpening opening = Handshake.openInitiation(ourPrivate, ourPublic, msg);
    Peer peer = opening == null ? null : device.peerByPublicKey(opening.remoteStatic());
    Handshake handshake = peer == null ? null : peer.handshake();
    if (handshake == null || !handshake.consumeInitiation(opening, now)) {
      device.counters().handshakeRejected.increment();
      return;
    }
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketReceived();
    if (source != null) {
      peer.roamTo(source);
    }
    peer.rxBytes.addAndGet(length);

    int oldIndex = handshake.localIndex();
    if (oldIndex != 0) {
      device.indexTable().remove(oldIndex);
    }
    int index = device.indexTable().registerHandshake(peer);
    Message.HandshakeResponse response = handshake.createResponse(index);
    Keypair keypair = response == null ? null : handshake.deriveKeys(now);
    if (keypair == null) {
      device.indexTable().remove(index);
      device.counters().handshakeRejected.increment();
      return;
    }
    peer.installResponderKeypair(keypair);
    peer.timers.sessionDerived(now);
    byte[] wire = response.encode();
    peer.cookieGenerator.addMacs(wire, now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketSent();
    peer.txBytes.addAndGet(wire.length);
    // Answer the way the initiation came.
    if (source != null) {
      device.sendDatagram(wire, wire.length, source);
    } else {
      device.replyExternal(peer, wire, wire.length);
    }
  }

  private void consumeResponse(
      Message.HandshakeResponse msg, int length, InetSocketAddress source, long now) {
    IndexTable.Entry entry = device.indexTable().lookup(msg.receiver());
    if (entry == null || entry.keypair() != null) {
      device.counters().unknownIndex.increment();
      return;
    }
    Peer peer = entry.peer();
    Handshake handshake = peer.handshake();
    if (handshake == null || !handshake.consumeResponse(msg)) {
      device.counters().handshakeRejected.increment();
      return;
    }
    Keypair keypair = handshake.deriveKeys(now);
    if (keypair == null) {
      return;
    }
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketReceived();
    if (source != null) {
      peer.roamTo(source);
    }
    peer.rxBytes.addAndGet(length);
    peer.installInitiatorKeypair(keypair);
    peer.timers.sessionDerived(now);
    peer.timers.handshakeComplete();
    // Confirms the session to the responder: queued packets if any, else a keepalive.
    peer.sendKeepalive();
  }

  private void consumeCookieReply(byte[] msg, long now) {
    Message.CookieReply reply = Message.CookieReply.parse(msg, 0, msg.length);
    IndexTable.Entry entry = reply == null ? null : device.indexTable().lookup(reply.receiver());
    if (entry == null) {
      device.counters().unknownIndex.increment();
      return;
    }
    if (!entry.peer().cookieGenerator.consumeReply(reply, now)) {
      device.counters().badMac.increment();
    }
  }

  /** What a cookie is bound to: the source address and port. */
  static byte[] sourceBytes(InetSocketAddress source) {
    byte[] ip = source.getAddress().getAddress();
    byte[] out = new byte[ip.length + 2];
    System.arraycopy(ip, 0, out, 0, ip.length);
    out[ip.length] = (byte) (source.getPort() >>> 8);
    out[ip.length + 1] = (byte) source.getPort();
    return out;
  }
}
