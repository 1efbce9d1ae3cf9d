package dev.trellis.system.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.system.harness.Trellis;
import dev.trellis.system.netns.WgImpl;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The Pekko settings the server depends on hold in the single jar users run, not only on the
 * modules' class path the unit tests see: the shade plugin concatenates every reference.conf, so a
 * Pekko key set in one of ours would lose to Pekko's own later definition. The configuration is
 * read as the jar's own Typesafe Config reads it, in a class loader that sees nothing but the jar.
 * No root needed.
 */
class ServerJarConfigTest {
  private static URLClassLoader jar;
  private static Object config;
  private static Method getString;
  private static Method getStringList;

  @BeforeAll
  static void loadTheJarsConfiguration() throws Exception {
    Trellis.launcher(); // fails with a clear message when the jar is not built
    Path path = WgImpl.home().resolve("control-plane/target/trellis.jar");
    jar =
        new URLClassLoader(new URL[] {path.toUri().toURL()}, ClassLoader.getPlatformClassLoader());
    Class<?> factory = jar.loadClass("com.typesafe.config.ConfigFactory");
    config = factory.getMethod("load", ClassLoader.class).invoke(null, jar);
    Class<?> configInterface = jar.loadClass("com.typesafe.config.Config");
    getString = configInterface.getMethod("getString", String.class);
    getStringList = configInterface.getMethod("getStringList", String.class);
  }

  @AfterAll
  static void close() throws Exception {
    jar.close();
  }

  private static String value(String path) throws Exception {
    return (String) getString.invoke(config, path);
  }

  private static String list(String path) throws Exception {
    return getStringList.invoke(config, path).toString();
  }

  @Test
  void pekkoSettingsOfTheServerHoldInTheJar() throws Exception {
    assertEquals("infinite", value("pekko.http.server.idle-timeout"));
    assertEquals("30s", value("pekko.http.server.websocket.periodic-keep-alive-max-idle"));
    assertEquals("1m", value("pekko.http.server.parsing.max-content-length"));
    assertEquals("pekko.actor.default-dispatcher", value("pekko.io.tcp.worker-dispatcher"));
    assertEquals("-1", value("pekko.actor.default-dispatcher.fork-join-executor.minimum-runnable"));
    assertEquals("[org.apache.pekko.event.slf4j.Slf4jLogger]", list("pekko.loggers"));
  }

  @Test
  void resultTypesJoinPekkosJacksonModulesInsteadOfReplacingThem() throws Exception {
    String modules = list("pekko.serialization.jackson.jackson-modules");
    assertTrue(modules.contains("dev.trellis.control.server.ResultTypes"), modules);
    // Pekko's own modules (parameter names, JDK 8 types, ...) are still there.
    assertTrue(
        modules.contains("com.fasterxml.jackson.module.paramnames.ParameterNamesModule"), modules);
  }

  @Test
  void trellisDefaultsStillComeFromReferenceConf() throws Exception {
    assertEquals("0.0.0.0:8080", value("trellis.listen"));
    assertEquals("leveldb", value("trellis.journal"));
  }
}
