package dev.trellis.proto.control;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.datatype.jsr310.JavaTimeModule;
import java.io.IOException;

/** JSON encoding of {@link ControlMessage}s; one shared, thread-safe mapper. */
public final class ControlJson {
  public static final ObjectMapper MAPPER =
      new ObjectMapper()
          .registerModule(new JavaTimeModule())
          .disable(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS)
          .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  private ControlJson() {}

  public static byte[] encode(ControlMessage message) {
    try {
      return MAPPER.writerFor(ControlMessage.class).writeValueAsBytes(message);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot encode " + message.getClass().getSimpleName(), e);
    }
  }

  /** Throws IOException with Jackson's explanation for anything that is not a known message. */
  public static ControlMessage decode(byte[] json) throws IOException {
    ControlMessage message = MAPPER.readValue(json, ControlMessage.class);
    if (message == null) {
      throw new IOException("empty control message");
    }
    return message;
  }
}
