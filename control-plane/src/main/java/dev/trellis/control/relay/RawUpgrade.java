package dev.trellis.control.relay;

import org.apache.pekko.NotUsed;
import org.apache.pekko.http.impl.engine.server.UpgradeToOtherProtocolResponseHeader;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.headers.Connection;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.util.ByteString;

/**
 * An HTTP/1.1 upgrade to a protocol of our own: {@code 101 Switching Protocols}, after which the
 * connection's bytes go to a flow. The relay's raw transport ({@code Upgrade: trellis-relay}) uses
 * it.
 *
 * <p>Pekko HTTP (1.3.0) has public API only for upgrading to WebSocket. The server engine hands a
 * connection to another protocol when the response carries its <em>internal</em> {@link
 * UpgradeToOtherProtocolResponseHeader}, so this class, and no other, depends on {@code
 * org.apache.pekko.http.impl}. A pekko-http upgrade may move or change it without notice:
 * RawUpgradeTest checks the class is there and does a raw upgrade round trip on localhost, and
 * names this class when it fails. Replace it with public API if pekko-http gains one.
 */
final class RawUpgrade {
  /** The internal class this depends on, for the test's messages. */
  static final String INTERNAL_HEADER =
      "org.apache.pekko.http.impl.engine.server.UpgradeToOtherProtocolResponseHeader";

  private RawUpgrade() {}

  /**
   * {@code 101 Switching Protocols} to {@code protocol}; the connection then carries {@code
   * handler}.
   */
  @SuppressWarnings({"unchecked", "rawtypes"})
  static HttpResponse switchingProtocols(
      String protocol, Flow<ByteString, ByteString, NotUsed> handler) {
    org.apache.pekko.stream.scaladsl.Flow scalaHandler = handler.asScala();
    return HttpResponse.create()
        .withStatus(StatusCodes.SWITCHING_PROTOCOLS)
        .addHeader(Connection.create("Upgrade"))
        .addHeader(RawHeader.create("Upgrade", protocol))
        .addHeader(new UpgradeToOtherProtocolResponseHeader(scalaHandler));
  }
}
