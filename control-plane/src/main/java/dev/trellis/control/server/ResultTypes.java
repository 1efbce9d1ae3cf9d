package dev.trellis.control.server;

import com.fasterxml.jackson.databind.jsontype.NamedType;
import com.fasterxml.jackson.databind.module.SimpleModule;
import dev.trellis.control.Result;
import dev.trellis.control.admin.Admin;
import dev.trellis.control.apikey.ApiKeyRegistry;
import dev.trellis.control.authkey.AuthKeyRegistry;
import dev.trellis.control.cluster.ClusterStatus;
import dev.trellis.control.node.AddressAllocator;
import dev.trellis.control.node.NodeRecord;
import dev.trellis.control.quality.QualityHistory;
import dev.trellis.control.relay.RelayDirectory;
import dev.trellis.control.user.User;
import java.util.List;

/**
 * The closed list of values a {@link Result.Ok} may carry, each under the name that travels with
 * it. {@code Result} names no type itself (so it depends on no feature); a new kind of reply is
 * added here and nowhere else. The names are the wire format: do not rename one.
 *
 * <p>A Jackson module, registered on Pekko's Jackson serializers (jackson-cbor and jackson-json)
 * through {@code pekko.serialization.jackson.jackson-modules} in this module's reference.conf; an
 * ObjectMapper of one's own that reads or writes Results needs {@code registerModule(new
 * ResultTypes())}. Only the named classes are accepted: no class is picked by name from the
 * payload.
 */
public final class ResultTypes extends SimpleModule {
  public static final List<NamedType> TYPES =
      List.of(
          new NamedType(User.class, "user"),
          new NamedType(AuthKeyRegistry.AuthKey.class, "auth-key"),
          new NamedType(AuthKeyRegistry.CreatedAuthKey.class, "created-auth-key"),
          new NamedType(AuthKeyRegistry.AuthKeyGrant.class, "auth-key-grant"),
          new NamedType(ApiKeyRegistry.ApiKey.class, "api-key"),
          new NamedType(ApiKeyRegistry.CreatedApiKey.class, "created-api-key"),
          new NamedType(AddressAllocator.Allocation.class, "allocation"),
          new NamedType(NodeRecord.class, "node"),
          new NamedType(Admin.UserList.class, "user-list"),
          new NamedType(Admin.AuthKeyList.class, "auth-key-list"),
          new NamedType(Admin.NodeList.class, "node-list"),
          new NamedType(Admin.ApiKeyList.class, "api-key-list"),
          new NamedType(Admin.LiveKeys.class, "live-keys"),
          new NamedType(ClusterStatus.class, "cluster-status"),
          new NamedType(RelayDirectory.RelayList.class, "relay-list"),
          new NamedType(QualityHistory.PairList.class, "quality-pairs"),
          new NamedType(QualityHistory.PointList.class, "quality-points"));

  public ResultTypes() {
    super("trellis-result-types");
    registerSubtypes(TYPES.toArray(NamedType[]::new));
  }
}
