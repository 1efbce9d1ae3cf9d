package dev.trellis.dataplane.wireguard;

import dev.trellis.proto.disco.DiscoMessage;
import java.net.InetSocketAddress;

/**
 * Receives the non-WireGuard datagrams that share the WireGuard UDP socket: path-discovery
 * messages (they start with {@link DiscoMessage#MAGIC}) and STUN responses (magic cookie at byte
 * 4). Neither can be mistaken for a WireGuard message, which starts with a type 1–4 and three zero
 * bytes.
 */
public interface DiscoHandler {
    byte[] MAGIC = DiscoMessage.MAGIC;
    int STUN_MAGIC_COOKIE = 0x2112A442;

    /** Called on the inbound thread with a private copy of the datagram; must not block. */
    void onDisco(byte[] datagram, InetSocketAddress source);

    static boolean isStun(byte[] buf, int length) {
        return length >= 20 && (buf[0] & 0xC0) == 0
                && ((buf[4] & 0xff) << 24 | (buf[5] & 0xff) << 16 | (buf[6] & 0xff) << 8 | (buf[7] & 0xff)) == STUN_MAGIC_COOKIE;
    }

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
