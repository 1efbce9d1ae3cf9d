package dev.trellis.persistence;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import java.io.NotSerializableException;
import java.util.List;
import java.util.Optional;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Bare List and Optional replies survive a round trip with their elements' own classes. */
class ContainerSerializerTest {
  private static ActorTestKit kit;
  private static Serialization serialization;

  record Item(String name, int n) implements CborSerializable {}

  @BeforeAll
  static void start() {
    kit = ActorTestKit.create("containers", ConfigFactory.load());
    serialization = SerializationExtension.get(kit.system().classicSystem());
  }

  @AfterAll
  static void stop() {
    kit.shutdownTestKit();
  }

  private static Object roundTrip(Object o) {
    Serializer s = serialization.findSerializerFor(o);
    assertInstanceOf(ContainerSerializer.class, s);
    return serialization
        .deserialize(s.toBinary(o), s.identifier(), Serializers.manifestFor(s, o))
        .get();
  }

  @Test
  void listsAndOptionalsKeepTheirElementTypes() {
    List<Item> items = List.of(new Item("a", 1), new Item("b", 2), new Item("c", 3));
    assertEquals(items, roundTrip(items));
    assertEquals(List.of(), roundTrip(List.of()));
    assertEquals(Optional.of(new Item("x", 9)), roundTrip(Optional.of(new Item("x", 9))));
    assertEquals(Optional.empty(), roundTrip(Optional.empty()));
  }

  @Test
  void garbageIsRejected() {
    ContainerSerializer s = (ContainerSerializer) serialization.findSerializerFor(List.of());
    assertThrows(
        NotSerializableException.class, () -> s.fromBinary(new byte[] {0x7f, 0, 0, 0}, "L"));
    assertThrows(
        NotSerializableException.class, () -> s.fromBinary(new byte[] {0, 0, 0, 1, 0, 0}, "L"));
    assertThrows(NotSerializableException.class, () -> s.fromBinary(new byte[0], "Q"));
  }
}
