package dev.trellis.control;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonSubTypes;
import com.fasterxml.jackson.annotation.JsonTypeInfo;
import dev.trellis.persistence.CborSerializable;
import java.util.Objects;

/** Reply of every command that can fail: the value, or why it was refused. */
@JsonTypeInfo(use = JsonTypeInfo.Id.NAME, property = "result")
@JsonSubTypes({
  @JsonSubTypes.Type(value = Result.Ok.class, name = "ok"),
  @JsonSubTypes.Type(value = Result.Rejected.class, name = "rejected")
})
public sealed interface Result<T> extends CborSerializable {

  /**
   * UNAVAILABLE: the entity did not answer in time (e.g. the cluster is moving it off a lost
   * member); retry.
   */
  enum Code {
    NOT_FOUND,
    ALREADY_EXISTS,
    INVALID,
    EXPIRED,
    USED,
    CONFLICT,
    UNAVAILABLE
  }

  /**
   * The value's type is named, not its class: an open {@code Id.CLASS} would let a peer pick any
   * class to instantiate. The names, a closed list, are registered outside this core type, in
   * {@code dev.trellis.control.server.ResultTypes}: a new kind of value is listed there.
   */
  record Ok<T>(@JsonTypeInfo(use = JsonTypeInfo.Id.NAME, property = "type") T value)
      implements Result<T> {
    public Ok {
      Objects.requireNonNull(value, "value");
    }
  }

  record Rejected<T>(Code code, String message) implements Result<T> {
    public Rejected {
      Objects.requireNonNull(code, "code");
      Objects.requireNonNull(message, "message");
    }
  }

  static <T> Result<T> ok(T value) {
    return new Ok<>(value);
  }

  static <T> Result<T> rejected(Code code, String message) {
    return new Rejected<>(code, message);
  }

  /** Same rejection, retyped: passes a refusal on through a reply of another type. */
  static <T> Result<T> rejected(Rejected<?> rejection) {
    return new Rejected<>(rejection.code(), rejection.message());
  }

  @JsonIgnore
  default boolean isOk() {
    return this instanceof Ok<T>;
  }

  /** The value, or {@link IllegalStateException} naming the rejection. */
  @JsonIgnore
  default T orElseThrow() {
    return switch (this) {
      case Ok<T> ok -> ok.value();
      case Rejected<T> r -> throw new IllegalStateException(r.code() + ": " + r.message());
    };
  }
}
