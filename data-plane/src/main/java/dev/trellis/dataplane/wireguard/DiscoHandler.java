package dev.trellis.dataplane.wireguard;

import java.net.InetSocketAddress;

/**
 * Receives path-discovery messages that share the WireGuard UDP socket. They start with
 * {@link #MAGIC}, which can never begin a WireGuard message (those start with a type 1–4 and three
 * zero bytes), so the two never mix.
 */
public interface DiscoHandler {
    byte[] MAGIC = {'T', 'R', 'L', 'S', 'D', 'S', 'C', '1'};

    /** Called on the inbound thread with a private copy of the datagram; must not block. */
    void onDisco(byte[] datagram, InetSocketAddress source);

    static boolean isDisco(byte[] buf, int length) {
        if (length < MAGIC.length) {
            return false;
        }
        for (int i = 0; i < MAGIC.length; i++) {
            if (buf[i] != MAGIC[i]) {
                return false;
            }
        }
        return true;
    }
}
