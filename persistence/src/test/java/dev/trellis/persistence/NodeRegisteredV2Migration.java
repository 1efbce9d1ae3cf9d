package dev.trellis.persistence;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.pekko.serialization.jackson.JacksonMigration;

/** Upgrades version 1 payloads of {@link NodeRegisteredV2}: no tags then. */
public final class NodeRegisteredV2Migration extends JacksonMigration {

  @Override
  public int currentVersion() {
    return 2;
  }

  @Override
  public JsonNode transform(int fromVersion, JsonNode json) {
    if (fromVersion < 2 && json instanceof ObjectNode node && !node.has("tags")) {
      node.putArray("tags");
    }
    return json;
  }
}
