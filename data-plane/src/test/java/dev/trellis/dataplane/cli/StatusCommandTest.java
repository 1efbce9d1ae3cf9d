package dev.trellis.dataplane.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.proto.control.ControlJson;
import java.time.Instant;
import org.junit.jupiter.api.Test;

/** The status table's packet filter line. */
class StatusCommandTest {
  private static JsonNode json(String text) throws Exception {
    return ControlJson.MAPPER.readTree(text);
  }

  @Test
  void filterLineSaysRulesAndDropsByReason() throws Exception {
    JsonNode status =
        json(
            """
            {"backendState":"Running","connected":true,"self":{"hostname":"robot"},"peers":[],
             "filter":{"policy":true,"rules":3,"dropped":7,
                       "droppedBy":{"no-rule":6,"malformed":1}}}
            """);
    String table = StatusCommand.table(status, Instant.EPOCH);
    assertTrue(
        table.endsWith(
            "# packet filter: 3 rules, 7 inbound packets dropped (no-rule 6, malformed 1)\n"),
        table);
  }

  @Test
  void noFilterLineWithoutPolicyOrDrops() throws Exception {
    assertEquals(
        "", StatusCommand.filterLine(json("{\"policy\":false,\"rules\":0,\"dropped\":0}")));
    assertEquals("", StatusCommand.filterLine(json("{}")), "an older agent's status");
    assertEquals(
        "# packet filter: 0 rules, 0 inbound packets dropped\n",
        StatusCommand.filterLine(
            json("{\"policy\":true,\"rules\":0,\"dropped\":0,\"droppedBy\":{\"no-rule\":0}}")));
  }
}
