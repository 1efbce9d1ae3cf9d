package dev.trellis.control.user;

import dev.trellis.persistence.CborSerializable;
import java.time.Instant;

/** A user (namespace) owning nodes and auth keys. */
public record User(long id, String name, Instant createdAt, int nodeCount)
    implements CborSerializable {}
