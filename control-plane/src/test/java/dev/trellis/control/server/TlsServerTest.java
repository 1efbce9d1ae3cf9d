package dev.trellis.control.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.dataplane.agent.ControlClient;
import dev.trellis.proto.control.ControlMessage;
import dev.trellis.proto.wireguard.Curve25519;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The optional HTTPS listener, with a throwaway self-signed certificate made by the JDK's keytool.
 */
@Timeout(60)
class TlsServerTest {
  @TempDir Path dir;

  @Test
  void servesKeyAndControlChannelOverHttps() throws Exception {
    Path keystore = dir.resolve("server.p12");
    Process keytool =
        new ProcessBuilder(
                Path.of(System.getProperty("java.home"), "bin", "keytool").toString(),
                "-genkeypair",
                "-alias",
                "trellis",
                "-keyalg",
                "EC",
                "-groupname",
                "secp256r1",
                "-dname",
                "CN=localhost",
                "-ext",
                "san=ip:127.0.0.1",
                "-validity",
                "2",
                "-storetype",
                "PKCS12",
                "-keystore",
                keystore.toString(),
                "-storepass",
                "changeit",
                "-keypass",
                "changeit")
            .redirectErrorStream(true)
            .start();
    assertEquals(0, keytool.waitFor(), new String(keytool.getInputStream().readAllBytes()));
    Path config = dir.resolve("trellis.conf");
    Files.writeString(
        config,
        "trellis.tls.keystore = \"" + keystore + "\"\ntrellis.tls.keystore-password = changeit\n");

    try (TrellisServer server =
        TrellisServer.start(ServerSettings.load(config, dir.resolve("data"), "127.0.0.1:0"))) {
      assertTrue(server.url().startsWith("https://"), server.url());
      KeyStore trust = KeyStore.getInstance("PKCS12");
      try (InputStream in = Files.newInputStream(keystore)) {
        trust.load(in, "changeit".toCharArray());
      }
      TrustManagerFactory tmf =
          TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
      tmf.init(trust);
      SSLContext ssl = SSLContext.getInstance("TLS");
      ssl.init(null, tmf.getTrustManagers(), null);
      HttpClient https = HttpClient.newBuilder().sslContext(ssl).build();

      HttpResponse<String> key =
          https.send(
              HttpRequest.newBuilder(URI.create(server.url() + "/key")).build(),
              HttpResponse.BodyHandlers.ofString());
      assertEquals(200, key.statusCode());
      assertTrue(key.body().contains(server.publicKeyBase64()));

      // The control channel runs over wss:// the same way.
      var received = new LinkedBlockingQueue<ControlMessage>();
      ControlClient client =
          ControlClient.connect(
                  https,
                  URI.create(server.url()),
                  Curve25519.generatePrivateKey(),
                  new ControlClient.Listener() {
                    @Override
                    public void onMessage(ControlMessage message) {
                      received.add(message);
                    }

                    @Override
                    public void onClosed(String reason) {}
                  })
              .get(20, TimeUnit.SECONDS);
      String nodeKey =
          Base64.getEncoder().encodeToString(Curve25519.publicKey(Curve25519.generatePrivateKey()));
      client.send(new ControlMessage.Login(nodeKey, null, "tls-node", "linux", List.of()));
      ControlMessage reply = received.poll(10, TimeUnit.SECONDS);
      assertTrue(
          reply instanceof ControlMessage.LoginResult r && !r.ok() && "NEEDS_AUTH".equals(r.code()),
          String.valueOf(reply));
      client.close();
    }
  }
}
