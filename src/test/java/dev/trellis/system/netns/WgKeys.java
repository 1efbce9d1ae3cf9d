package dev.trellis.system.netns;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * A WireGuard key pair made with {@code wg genkey}/{@code wg pubkey}; the private key lives in a
 * 0600 file.
 */
public record WgKeys(String privateKey, String publicKey, Path privateKeyFile) {

  public static WgKeys generate(Netns bed) {
    String priv = Commands.check(List.of(Tools.wg(), "genkey")).stdout().strip();
    String pub = publicKeyOf(priv);
    Path file = bed.writeSecret("key-" + Netns.random(8), priv + "\n");
    return new WgKeys(priv, pub, file);
  }

  public static String publicKeyOf(String privateKey) {
    return Commands.run(
            List.of(Tools.wg(), "pubkey"), Map.of(), privateKey + "\n", Commands.DEFAULT_TIMEOUT)
        .orThrow()
        .stdout()
        .strip();
  }

  /** A fresh preshared key ({@code wg genpsk}) written to a 0600 file. */
  public static Psk generatePsk(Netns bed) {
    String psk = Commands.check(List.of(Tools.wg(), "genpsk")).stdout().strip();
    return new Psk(psk, bed.writeSecret("psk-" + Netns.random(8), psk + "\n"));
  }

  public record Psk(String key, Path file) {}

  @Override
  public String toString() {
    return "WgKeys[" + publicKey + "]";
  }
}
