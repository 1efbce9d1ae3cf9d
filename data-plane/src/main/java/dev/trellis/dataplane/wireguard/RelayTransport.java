package dev.trellis.dataplane.wireguard;

/**
 * A second way to reach a peer when UDP cannot: a relay that carries WireGuard messages over HTTP
 * to the peer's public key. The relay sees only ciphertext; WireGuard authenticates everything
 * that comes back through it.
 */
public interface RelayTransport {
    /** Hands one WireGuard message for the peer with this public key to the relay; false if it was dropped. */
    boolean send(byte[] peerPublicKey, byte[] message, int length);
}
