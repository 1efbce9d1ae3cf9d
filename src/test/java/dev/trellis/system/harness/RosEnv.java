package dev.trellis.system.harness;

import java.nio.file.Path;
import java.util.Map;

/** The environment a ROS 1 process gets in the system tests. */
public final class RosEnv {
  private RosEnv() {}

  /**
   * Master at {@code masterUri}; this host advertised by {@code addressVariable} ({@code ROS_IP} or
   * {@code ROS_HOSTNAME}) = {@code address}; logs and state under {@code home}.
   */
  public static Map<String, String> of(
      String masterUri, String addressVariable, String address, Path home) {
    return Map.of(
        "ROS_MASTER_URI",
        masterUri,
        addressVariable,
        address,
        "ROS_HOME",
        home.toString(),
        "ROS_LOG_DIR",
        home.resolve("log").toString(),
        "PYTHONUNBUFFERED",
        "1");
  }
}
