package dev.trellis.control.server;

import dev.trellis.proto.wireguard.Curve25519;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Base64;

/**
 * The server's static Curve25519 key: made on first start, kept in the data directory, mode 0600.
 */
public final class ServerKey {
  public static final String FILE = "server.key";

  private ServerKey() {}

  public static byte[] loadOrCreate(Path dataDir) throws IOException {
    Path file = dataDir.resolve(FILE);
    if (Files.exists(file)) {
      byte[] key;
      try {
        key = Base64.getDecoder().decode(Files.readString(file, StandardCharsets.US_ASCII).trim());
      } catch (IllegalArgumentException e) {
        throw new IOException(file + " is not a base64 key: " + e.getMessage());
      }
      if (key.length != Curve25519.KEY_LENGTH) {
        throw new IOException(file + " must hold a 32-byte key");
      }
      Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
      return Curve25519.clamp(key);
    }
    byte[] key = Curve25519.generatePrivateKey();
    Files.createFile(
        file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    Files.writeString(
        file,
        Base64.getEncoder().encodeToString(key) + "\n",
        StandardCharsets.US_ASCII,
        StandardOpenOption.TRUNCATE_EXISTING);
    return key;
  }
}
