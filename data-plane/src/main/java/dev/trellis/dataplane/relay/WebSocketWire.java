package dev.trellis.dataplane.relay;

import dev.trellis.proto.relay.RelayFrame;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The relay over the JDK's WebSocket client: one frame per binary message, one send in flight at a
 * time (its rule).
 */
final class WebSocketWire implements RelayClient.Wire, WebSocket.Listener {
  private final RelayClient client;
  private final AtomicBoolean sending = new AtomicBoolean();
  private volatile WebSocket ws;
  private byte[] partial = new byte[2048];
  private int partialLength;

  WebSocketWire(RelayClient client) {
    this.client = client;
  }

  @Override
  public String name() {
    return "websocket";
  }

  @Override
  public void onOpen(WebSocket webSocket) {
    ws = webSocket;
    webSocket.request(1);
    wake();
  }

  @Override
  public void wake() {
    WebSocket socket = ws;
    if (socket == null) {
      return; // onOpen pumps
    }
    while (sending.compareAndSet(false, true)) {
      ByteBuffer next = client.isClosed() ? null : client.nextFrame();
      if (next == null) {
        sending.set(false);
        if (!client.hasFrames() || client.isClosed()) {
          return;
        }
        continue;
      }
      CompletableFuture<WebSocket> f = socket.sendBinary(next, true);
      if (f.isDone()) {
        client.written(next, !f.isCompletedExceptionally());
        sending.set(false);
        continue;
      }
      f.whenComplete(
          (w, e) -> {
            client.written(next, e == null);
            sending.set(false);
            wake();
          });
      return;
    }
  }

  @Override
  public void abort() {
    WebSocket socket = ws;
    if (socket != null) {
      socket.abort();
    }
  }

  @Override
  public void close() {
    WebSocket socket = ws;
    if (socket != null) {
      socket
          .sendClose(WebSocket.NORMAL_CLOSURE, "bye")
          .orTimeout(2, TimeUnit.SECONDS)
          .whenComplete((r, e) -> socket.abort());
    }
  }

  /** Accumulates fragments until {@code last}, then hands over one frame. */
  @Override
  public CompletionStage<?> onBinary(WebSocket webSocket, ByteBuffer data, boolean last) {
    int n = data.remaining();
    if (partialLength + n > RelayFrame.MAX_FRAME) {
      client.fail("relay frame larger than " + RelayFrame.MAX_FRAME + " bytes");
      return null;
    }
    if (partialLength + n > partial.length) {
      partial =
          Arrays.copyOf(
              partial,
              Math.max(partialLength + n, Math.min(partial.length * 2, RelayFrame.MAX_FRAME)));
    }
    data.get(partial, partialLength, n);
    partialLength += n;
    if (last) {
      int length = partialLength;
      partialLength = 0;
      client.onFrame(partial, length);
    }
    if (!client.isClosed()) {
      webSocket.request(1);
    }
    return null;
  }

  @Override
  public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
    client.fail("relay sent a text message");
    return null;
  }

  @Override
  public CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
    client.onRemoteClose(
        " (" + statusCode + (reason == null || reason.isEmpty() ? "" : " " + reason) + ")");
    return null;
  }

  @Override
  public void onError(WebSocket webSocket, Throwable error) {
    client.onError(error);
  }
}
