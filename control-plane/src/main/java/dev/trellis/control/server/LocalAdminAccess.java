package dev.trellis.control.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.control.Result;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.proto.control.ControlJson;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * Lets admin commands on the server host find the server without flags: the server keeps its URL
 * and an API key of its own in {@code <data-dir>/cli.json} (mode 0600, readable only by whoever can
 * read the data directory anyway).
 */
public final class LocalAdminAccess {
  public static final String FILE = "cli.json";
  private static final Duration ASK = Duration.ofSeconds(15);

  private LocalAdminAccess() {}

  public record Access(String url, String apiKey) {}

  /** Reads {@code <dataDir>/cli.json}; null if absent. */
  public static Access read(Path dataDir) throws IOException {
    Path file = dataDir.resolve(FILE);
    if (!Files.exists(file)) {
      return null;
    }
    JsonNode node = ControlJson.MAPPER.readTree(file.toFile());
    if (!node.hasNonNull("url") || !node.hasNonNull("apiKey")) {
      throw new IOException(file + " is missing url or apiKey");
    }
    return new Access(node.get("url").asText(), node.get("apiKey").asText());
  }

  /**
   * Keeps the file's key if the registry still accepts it, else makes a new one; updates the URL.
   */
  static void ensure(
      Path dataDir,
      String url,
      ActorRef<ApiKeyRegistry.Command> apiKeys,
      Scheduler scheduler,
      Clock clock)
      throws Exception {
    Access existing = null;
    try {
      existing = read(dataDir);
    } catch (IOException e) {
      // unreadable: replaced below
    }
    String key = null;
    if (existing != null) {
      String candidate = existing.apiKey();
      Result<ApiKeyRegistry.ApiKey> verified =
          AskPattern.<ApiKeyRegistry.Command, Result<ApiKeyRegistry.ApiKey>>ask(
                  apiKeys,
                  r -> new ApiKeyRegistry.VerifyApiKey(candidate, clock.instant(), r),
                  ASK,
                  scheduler)
              .toCompletableFuture()
              .get(ASK.toSeconds(), TimeUnit.SECONDS);
      if (verified instanceof Result.Ok<ApiKeyRegistry.ApiKey>) {
        key = candidate;
      }
    }
    if (key == null) {
      Result<ApiKeyRegistry.CreatedApiKey> created =
          AskPattern.<ApiKeyRegistry.Command, Result<ApiKeyRegistry.CreatedApiKey>>ask(
                  apiKeys, r -> new ApiKeyRegistry.CreateApiKey(null, r), ASK, scheduler)
              .toCompletableFuture()
              .get(ASK.toSeconds(), TimeUnit.SECONDS);
      if (!(created
          instanceof Result.Ok<ApiKeyRegistry.CreatedApiKey>(ApiKeyRegistry.CreatedApiKey k))) {
        throw new IOException("could not create the local admin API key: " + created);
      }
      key = k.secret();
    }
    if (existing != null && existing.apiKey().equals(key) && existing.url().equals(url)) {
      return;
    }
    Path tmp = dataDir.resolve(FILE + ".tmp");
    Files.deleteIfExists(tmp);
    Files.createFile(
        tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    ControlJson.MAPPER.writeValue(tmp.toFile(), Map.of("url", url, "apiKey", key));
    Files.move(
        tmp,
        dataDir.resolve(FILE),
        StandardCopyOption.REPLACE_EXISTING,
        StandardCopyOption.ATOMIC_MOVE);
  }
}
