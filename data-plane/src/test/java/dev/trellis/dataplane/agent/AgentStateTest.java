package dev.trellis.dataplane.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.Base64;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AgentStateTest {
  @TempDir Path temp;

  @Test
  void createsKeysAndDirectoryPrivately() throws IOException {
    Path dir = temp.resolve("state");
    AgentState state = AgentState.open(dir);
    assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir)));
    for (String name : new String[] {"machine.key", "node.key"}) {
      Path file = dir.resolve(name);
      assertEquals(
          "rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)), name);
      byte[] key = Base64.getDecoder().decode(Files.readString(file).strip());
      assertEquals(32, key.length);
      assertArrayEquals(
          Curve25519.clamp(key), key, name + " is a clamped private key, like wg genkey's");
    }
    assertFalse(Arrays.equals(state.machinePrivateKey(), state.nodePrivateKey()));
    state.save(new AgentState.Saved("https://x", "robot", true, true));
    assertEquals(
        "rw-------",
        PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("state.json"))));
  }

  @Test
  void tightensAnExistingDirectoryAndLooseKeyFile() throws IOException {
    Path dir = Files.createDirectory(temp.resolve("state"));
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
    AgentState.open(dir);
    Files.setPosixFilePermissions(
        dir.resolve("node.key"), PosixFilePermissions.fromString("rw-r--r--"));
    AgentState.open(dir);
    assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir)));
    assertEquals(
        "rw-------",
        PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("node.key"))));
  }

  @Test
  void refusesAWorldWritableDirectory() throws IOException {
    Path dir = Files.createDirectory(temp.resolve("shared"));
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxrwxrwx"));
    IOException e = assertThrows(IOException.class, () -> AgentState.open(dir));
    assertTrue(e.getMessage().contains("writable by everyone"), e.getMessage());
  }

  @Test
  void keysAndStateSurviveARestart() throws IOException {
    Path dir = temp.resolve("state");
    AgentState first = AgentState.open(dir);
    assertEquals(AgentState.Saved.EMPTY, first.saved());
    AgentState.Saved saved =
        new AgentState.Saved("https://trellis.example.com", "robot-7", true, false);
    first.save(saved);

    AgentState second = AgentState.open(dir);
    assertArrayEquals(first.machinePrivateKey(), second.machinePrivateKey());
    assertArrayEquals(first.nodePrivateKey(), second.nodePrivateKey());
    assertEquals(first.nodePublicKeyBase64(), second.nodePublicKeyBase64());
    assertEquals(saved, second.saved());
    assertFalse(Files.exists(dir.resolve("state.json.tmp")));
  }

  @Test
  void rotatedNodeKeyIsPersisted() throws IOException {
    Path dir = temp.resolve("state");
    AgentState state = AgentState.open(dir);
    byte[] before = state.nodePrivateKey();
    byte[] after = state.rotateNodeKey();
    assertFalse(Arrays.equals(before, after));
    assertArrayEquals(after, AgentState.open(dir).nodePrivateKey());
    assertEquals(
        "rw-------",
        PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("node.key"))));
  }

  @Test
  void corruptKeyIsAnErrorNotANewIdentity() throws IOException {
    Path dir = temp.resolve("state");
    AgentState.open(dir);
    Files.writeString(dir.resolve("machine.key"), "not a key\n");
    IOException e = assertThrows(IOException.class, () -> AgentState.open(dir));
    assertTrue(e.getMessage().contains("machine.key"), e.getMessage());
  }
}
