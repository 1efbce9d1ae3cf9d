package dev.trellis.control.policy;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a policy file: HuJSON, which is JSON plus {@code //} and {@code /* *}{@code /} comments and
 * trailing commas (Jackson's parser does both). Unlike a Jackson tree, every value here remembers
 * the line it starts on, so a policy error can name the line, and a duplicate key is an error.
 */
final class PolicyJson {
  private static final JsonFactory FACTORY =
      JsonFactory.builder()
          .enable(JsonReadFeature.ALLOW_JAVA_COMMENTS)
          .enable(JsonReadFeature.ALLOW_TRAILING_COMMA)
          .build();

  private PolicyJson() {}

  /** A value and the line (1-based) it starts on. */
  sealed interface Value {
    int line();
  }

  record Obj(int line, Map<String, Value> fields) implements Value {}

  record Arr(int line, List<Value> items) implements Value {}

  record Str(int line, String text) implements Value {}

  /** Numbers, booleans and null: kept as their text, which policy files do not use. */
  record Other(int line, String text) implements Value {}

  static Value read(String text) throws PolicyException {
    try (JsonParser parser = FACTORY.createParser(text)) {
      JsonToken first = parser.nextToken();
      if (first == null) {
        throw new PolicyException(1, "the policy is empty");
      }
      Value value = value(parser);
      if (parser.nextToken() != null) {
        throw new PolicyException(line(parser), "unexpected content after the policy's object");
      }
      return value;
    } catch (JsonParseException e) {
      String message = e.getOriginalMessage();
      int cut = message.indexOf('\n');
      throw new PolicyException(
          e.getLocation() == null ? 0 : e.getLocation().getLineNr(),
          "not valid HuJSON: " + (cut < 0 ? message : message.substring(0, cut)));
    } catch (IOException e) {
      throw new PolicyException(0, "cannot read the policy: " + e.getMessage());
    }
  }

  private static Value value(JsonParser parser) throws IOException, PolicyException {
    int line = line(parser);
    JsonToken token = parser.currentToken();
    return switch (token) {
      case START_OBJECT -> {
        Map<String, Value> fields = new LinkedHashMap<>();
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
          String name = parser.currentName();
          int nameLine = line(parser);
          parser.nextToken();
          if (fields.put(name, value(parser)) != null) {
            throw new PolicyException(nameLine, "\"" + name + "\" appears twice");
          }
        }
        yield new Obj(line, fields);
      }
      case START_ARRAY -> {
        List<Value> items = new ArrayList<>();
        while (parser.nextToken() != JsonToken.END_ARRAY) {
          items.add(value(parser));
        }
        yield new Arr(line, items);
      }
      case VALUE_STRING -> new Str(line, parser.getText());
      default -> new Other(line, parser.getText());
    };
  }

  private static int line(JsonParser parser) {
    return parser.currentTokenLocation().getLineNr();
  }
}
