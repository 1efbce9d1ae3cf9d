package dev.trellis.control;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonSubTypes;
import com.fasterxml.jackson.annotation.JsonTypeInfo;
import dev.trellis.control.admin.Admin;
import dev.trellis.control.apikey.ApiKeyRegistry.ApiKey;
import dev.trellis.control.apikey.ApiKeyRegistry.CreatedApiKey;
import dev.trellis.control.authkey.AuthKeyRegistry.AuthKey;
import dev.trellis.control.authkey.AuthKeyRegistry.AuthKeyGrant;
import dev.trellis.control.authkey.AuthKeyRegistry.CreatedAuthKey;
import dev.trellis.control.node.AddressAllocator.Allocation;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.user.User;
import dev.trellis.persistence.CborSerializable;
import java.util.Objects;

/** Reply of every command that can fail: the value, or why it was refused. */
@JsonTypeInfo(use = JsonTypeInfo.Id.NAME, property = "result")
@JsonSubTypes({
  @JsonSubTypes.Type(value = Result.Ok.class, name = "ok"),
  @JsonSubTypes.Type(value = Result.Rejected.class, name = "rejected")
})
public sealed interface Result<T> extends CborSerializable {

  /** UNAVAILABLE: the entity did not answer in time (e.g. the cluster is moving it off a lost member); retry. */
  enum Code { NOT_FOUND, ALREADY_EXISTS, INVALID, EXPIRED, USED, CONFLICT, UNAVAILABLE }

  /**
   * The value's type is named, not its class: an open {@code Id.CLASS} would let a peer pick any
   * class to instantiate. A new kind of value must be listed here.
   */
  record Ok<T>(
      @JsonTypeInfo(use = JsonTypeInfo.Id.NAME, property = "type")
      @JsonSubTypes({
        @JsonSubTypes.Type(value = User.class, name = "user"),
        @JsonSubTypes.Type(value = AuthKey.class, name = "auth-key"),
        @JsonSubTypes.Type(value = CreatedAuthKey.class, name = "created-auth-key"),
        @JsonSubTypes.Type(value = AuthKeyGrant.class, name = "auth-key-grant"),
        @JsonSubTypes.Type(value = ApiKey.class, name = "api-key"),
        @JsonSubTypes.Type(value = CreatedApiKey.class, name = "created-api-key"),
        @JsonSubTypes.Type(value = Allocation.class, name = "allocation"),
        @JsonSubTypes.Type(value = NodeRecord.class, name = "node"),
        @JsonSubTypes.Type(value = Admin.UserList.class, name = "user-list"),
        @JsonSubTypes.Type(value = Admin.AuthKeyList.class, name = "auth-key-list"),
        @JsonSubTypes.Type(value = Admin.NodeList.class, name = "node-list"),
        @JsonSubTypes.Type(value = Admin.ApiKeyList.class, name = "api-key-list"),
        @JsonSubTypes.Type(value = Admin.LiveKeys.class, name = "live-keys"),
        @JsonSubTypes.Type(value = dev.trellis.control.cluster.ClusterStatus.class, name = "cluster-status"),
        @JsonSubTypes.Type(value = dev.trellis.control.relay.RelayDirectory.RelayList.class, name = "relay-list")
      })
      T value)
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
