package dev.trellis.control;

import com.typesafe.config.ConfigFactory;
import dev.trellis.control.cluster.ClusterSettings;
import dev.trellis.persistence.PersistenceSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.Base64;
import java.util.function.Function;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Join;

/**
 * An actor system on the real LevelDB journal in a data directory, restartable on the same
 * directory. The journal holds the directory open until its system has terminated, so {@link
 * #restart()} waits for that before the next system opens it.
 */
public final class PersistentTestKit implements AutoCloseable {

  public static final Duration TIMEOUT = Duration.ofSeconds(10);
  private static final SecureRandom RANDOM = new SecureRandom();

  private final Path dataDir;
  private ActorTestKit kit;

  public PersistentTestKit(Path dataDir) {
    this.dataDir = dataDir;
    this.kit = start();
  }

  /**
   * A one-member cluster (sharded entities need one), on the LevelDB journal in the data directory.
   */
  private ActorTestKit start() {
    var cluster = ClusterSettings.from(ConfigFactory.load()).pekkoConfig();
    // Leaving even a one-member cluster (coordinated shutdown, shard hand-off) can take more than
    // the
    // test kit's default 10 s on a busy 2-core machine.
    var slowShutdown =
        ConfigFactory.parseString("pekko.actor.testkit.typed.system-shutdown-default = 60s");
    ActorTestKit k =
        ActorTestKit.create(
            "trellis-test",
            slowShutdown
                .withFallback(PersistenceSettings.forDataDir(dataDir))
                .withFallback(cluster)
                .withFallback(ConfigFactory.load()));
    var self = Cluster.get(k.system());
    self.manager().tell(Join.create(self.selfMember().address()));
    return k;
  }

  public ActorTestKit kit() {
    return kit;
  }

  public Path dataDir() {
    return dataDir;
  }

  /** Shuts the system down (waiting for termination) and starts a new one on the same data. */
  public void restart() {
    kit.shutdownTestKit();
    kit = start();
  }

  /** Sends the message built around a fresh probe and returns the single reply. */
  public <C, R> R ask(ActorRef<C> target, Function<ActorRef<R>, C> message) {
    TestProbe<R> probe = kit.createTestProbe();
    target.tell(message.apply(probe.ref()));
    return probe.receiveMessage(TIMEOUT);
  }

  @Override
  public void close() {
    kit.shutdownTestKit();
  }

  public static boolean hasSnapshots(Path dataDir) {
    try (var files = Files.list(dataDir.resolve("snapshots"))) {
      return files.findAny().isPresent();
    } catch (IOException e) {
      return false;
    }
  }

  /** A random public key in the textual form nodes send (base64 of 32 bytes). */
  public static String randomKey() {
    byte[] key = new byte[32];
    RANDOM.nextBytes(key);
    return Base64.getEncoder().encodeToString(key);
  }

  public static <T> T ok(Result<T> result) {
    return result.orElseThrow();
  }

  public static Result.Code code(Result<?> result) {
    if (result instanceof Result.Rejected<?> rejected) return rejected.code();
    throw new AssertionError("expected a rejection, got " + result);
  }
}
