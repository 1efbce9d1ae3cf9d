package dev.trellis.persistence;

/**
 * Marks events, states, snapshots and messages that Pekko serializes with Jackson CBOR (bound in
 * this module's {@code reference.conf}).
 *
 * <p>Versioning rule for persisted classes: adding a field with a default is done by a {@link
 * org.apache.pekko.serialization.jackson.JacksonMigration} registered under {@code
 * pekko.serialization.jackson.migrations}; renaming or removing a class needs one too, since old
 * journals name the class in each event's manifest.
 */
public interface CborSerializable {}
