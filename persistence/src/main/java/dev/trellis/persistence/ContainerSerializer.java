package dev.trellis.persistence;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.NotSerializableException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.SerializerWithStringManifest;
import org.apache.pekko.serialization.Serializers;

/**
 * Replies that are a plain {@code List} or {@code Optional} of serializable messages (a registry's
 * listing, an entity's Get) cross cluster members too. Each element is written with its own
 * serializer id and manifest, so it comes back as the class it was — Jackson alone would not know
 * the element type of a bare list.
 *
 * <pre>
 * manifest "L": count (int) | per element: serializer id (int) | manifest (UTF) | length (int) | bytes
 * manifest "O": 0 (empty) or 1 followed by one element as above
 * </pre>
 */
public final class ContainerSerializer extends SerializerWithStringManifest {
  private static final String LIST = "L";
  private static final String OPTIONAL = "O";
  private static final int MAX_ELEMENTS = 1_000_000;

  private final ExtendedActorSystem system;
  private volatile Serialization serialization;

  public ContainerSerializer(ExtendedActorSystem system) {
    this.system = system;
  }

  @Override
  public int identifier() {
    return 74_021;
  }

  private Serialization serialization() {
    Serialization s = serialization;
    if (s == null) {
      s = SerializationExtension.get(system);
      serialization = s;
    }
    return s;
  }

  @Override
  public String manifest(Object o) {
    if (o instanceof List<?>) return LIST;
    if (o instanceof Optional<?>) return OPTIONAL;
    throw new IllegalArgumentException("not a List or Optional: " + o.getClass().getName());
  }

  @Override
  public byte[] toBinary(Object o) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      switch (o) {
        case List<?> list -> {
          out.writeInt(list.size());
          for (Object element : list) write(out, element);
        }
        case Optional<?> opt -> {
          out.writeBoolean(opt.isPresent());
          if (opt.isPresent()) write(out, opt.get());
        }
        default ->
            throw new IllegalArgumentException("not a List or Optional: " + o.getClass().getName());
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bytes.toByteArray();
  }

  private void write(DataOutputStream out, Object element) throws IOException {
    Serializer serializer = serialization().findSerializerFor(element);
    byte[] payload = serializer.toBinary(element);
    out.writeInt(serializer.identifier());
    out.writeUTF(Serializers.manifestFor(serializer, element));
    out.writeInt(payload.length);
    out.write(payload);
  }

  @Override
  public Object fromBinary(byte[] bytes, String manifest) throws NotSerializableException {
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes))) {
      return switch (manifest) {
        case LIST -> {
          int n = in.readInt();
          if (n < 0 || n > MAX_ELEMENTS)
            throw new NotSerializableException("list of " + n + " elements");
          List<Object> list = new ArrayList<>(Math.min(n, 1024));
          for (int i = 0; i < n; i++) list.add(read(in));
          yield Collections.unmodifiableList(list);
        }
        case OPTIONAL -> in.readBoolean() ? Optional.of(read(in)) : Optional.empty();
        default ->
            throw new NotSerializableException("unknown container manifest '" + manifest + "'");
      };
    } catch (IOException e) {
      NotSerializableException wrapped =
          new NotSerializableException("malformed container: " + e.getMessage());
      wrapped.initCause(e);
      throw wrapped;
    }
  }

  private Object read(DataInputStream in) throws IOException {
    int id = in.readInt();
    String manifest = in.readUTF();
    int length = in.readInt();
    if (length < 0 || length > in.available())
      throw new IOException("element of " + length + " bytes");
    byte[] payload = in.readNBytes(length);
    return serialization().deserialize(payload, id, manifest).get();
  }
}
