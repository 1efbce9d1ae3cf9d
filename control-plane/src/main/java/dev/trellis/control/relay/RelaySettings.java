package dev.trellis.control.relay;

import com.typesafe.config.Config;

/**
 * The {@code trellis.relay} section: whether {@code GET /relay} is served, the region name it
 * reports, and how many frames may wait for one slow node before newer ones are dropped.
 */
public record RelaySettings(boolean enabled, String region, int maxQueue) {

    public static RelaySettings from(Config config) {
        Config r = config.getConfig("trellis.relay");
        int maxQueue = r.getInt("max-queue");
        if (maxQueue < 1) {
            throw new IllegalArgumentException("trellis.relay.max-queue must be at least 1, not " + maxQueue);
        }
        return new RelaySettings(r.getBoolean("enabled"), r.getString("region"), maxQueue);
    }
}
