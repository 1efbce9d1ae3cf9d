package dev.trellis.persistence;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import com.fasterxml.jackson.dataformat.cbor.databind.CBORMapper;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.SerializerWithStringManifest;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class EventVersioningTest {

  private static ActorSystem<Void> system;
  private static Serialization serialization;

  @BeforeAll
  static void start() {
    system = ActorSystem.create(Behaviors.empty(), "versioning");
    serialization = SerializationExtension.get(system.classicSystem());
  }

  @AfterAll
  static void stop() {
    system.terminate();
    system.getWhenTerminated().toCompletableFuture().join();
  }

  @Test
  void cborSerializableIsBoundToJacksonCbor() {
    Serializer serializer =
        serialization.findSerializerFor(new NodeRegisteredV2(1, "m", "u", Set.of()));
    assertEquals("JacksonCborSerializer", serializer.getClass().getSimpleName());
  }

  @Test
  void newEventsCarryTheCurrentVersionInTheManifest() {
    var event = new NodeRegisteredV2(7, "mkey", "alice", Set.of("tag:robot"));
    var serializer = (SerializerWithStringManifest) serialization.findSerializerFor(event);
    String manifest = serializer.manifest(event);
    assertEquals(NodeRegisteredV2.class.getName() + "#2", manifest);
    Object back =
        serialization
            .deserialize(serializer.toBinary(event), serializer.identifier(), manifest)
            .get();
    assertEquals(event, back);
  }

  @Test
  void versionOnePayloadGetsTheDefault() throws Exception {
    // What version 1 wrote: no tags field, and a manifest without "#version" (= version 1).
    Map<String, Object> v1 = new LinkedHashMap<>();
    v1.put("nodeId", 7);
    v1.put("machineKey", "mkey");
    v1.put("user", "alice");
    byte[] payload = new CBORMapper().writeValueAsBytes(v1);
    int serializerId =
        serialization.findSerializerFor(new NodeRegisteredV2(1, "m", "u", Set.of())).identifier();

    Object back =
        serialization.deserialize(payload, serializerId, NodeRegisteredV2.class.getName()).get();

    NodeRegisteredV2 event = assertInstanceOf(NodeRegisteredV2.class, back);
    assertEquals(new NodeRegisteredV2(7, "mkey", "alice", Set.of()), event);
  }
}
