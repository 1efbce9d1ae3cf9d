package dev.trellis.persistence;

import java.util.Set;

/**
 * Example of a versioned event. Version 1 was {@code (nodeId, machineKey, user)}; version 2 added
 * {@code tags}, which {@link NodeRegisteredV2Migration} fills with an empty set for old payloads.
 */
public record NodeRegisteredV2(long nodeId, String machineKey, String user, Set<String> tags)
    implements CborSerializable {}
