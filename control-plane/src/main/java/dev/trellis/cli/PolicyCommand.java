package dev.trellis.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trellis.control.Result;
import dev.trellis.control.policy.PolicyAccess;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** `trellis policy`: the access policy (Tailscale's policy-file format, as Headscale reads it). */
@Command(
    name = "policy",
    mixinStandardHelpOptions = true,
    description = "Who may talk to whom: get, set, check and explain the access policy.",
    subcommands = {
      PolicyCommand.Get.class,
      PolicyCommand.Set.class,
      PolicyCommand.Check.class,
      PolicyCommand.Why.class,
      PolicyCommand.Clear.class
    })
final class PolicyCommand extends AdminCommand.Group {

  /** The file's text, or standard input for "-"; a missing file is one clear line. */
  static String read(String file) throws AdminOptions.Failure {
    try {
      return file.equals("-")
          ? new String(System.in.readAllBytes(), StandardCharsets.UTF_8)
          : Files.readString(Path.of(file));
    } catch (IOException e) {
      throw new AdminOptions.Failure("cannot read " + file + ": " + e.getMessage());
    }
  }

  @Command(
      name = "get",
      mixinStandardHelpOptions = true,
      description = "Print the policy in force, as it was set.")
  static final class Get extends AdminCommand {
    @Option(names = "--json", description = "Print JSON (text, version, time set).")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode current = server.get("policy");
      if (json) {
        printJson(out, current);
      } else if (current.path("text").isTextual()) {
        out.print(current.path("text").asText());
      } else {
        spec.commandLine().getErr().println("no policy is set: every node may reach every other");
      }
    }
  }

  @Command(
      name = "set",
      mixinStandardHelpOptions = true,
      description =
          "Check FILE, run its tests, and put it in force on every node; on any error the policy"
              + " in force stays.")
  static final class Set extends AdminCommand {
    @Parameters(paramLabel = "FILE", description = "HuJSON policy file, or - for standard input.")
    String file;

    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode current = server.put("policy", Map.of("policy", read(file)));
      out.println("policy version " + current.path("version").asLong() + " in force");
    }
  }

  /** Works offline: parses and tests the file here, without a server. */
  @Command(
      name = "check",
      mixinStandardHelpOptions = true,
      description = "Check FILE and run its tests, changing nothing (no server needed).")
  static final class Check implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Parameters(paramLabel = "FILE", description = "HuJSON policy file, or - for standard input.")
    String file;

    @Override
    public Integer call() {
      PrintWriter out = spec.commandLine().getOut();
      PrintWriter err = spec.commandLine().getErr();
      try {
        Result<PolicyAccess.Checked> checked = PolicyAccess.check(read(file));
        if (checked instanceof Result.Rejected<PolicyAccess.Checked> no) {
          err.println("trellis: " + file + ": " + no.message());
          return 1;
        }
        PolicyAccess.Checked c = checked.orElseThrow();
        out.println(
            file
                + ": valid: "
                + c.acls()
                + (c.acls() == 1 ? " rule, " : " rules, ")
                + c.tests()
                + (c.tests() == 1 ? " test" : " tests")
                + " passed");
        return 0;
      } catch (AdminOptions.Failure e) {
        err.println("trellis: " + e.getMessage());
        return 1;
      } finally {
        out.flush();
        err.flush();
      }
    }
  }

  @Command(
      name = "why",
      mixinStandardHelpOptions = true,
      description = "Which rule lets SRC open a connection to DST[:PORT], or that none does.")
  static final class Why extends AdminCommand {
    @Parameters(
        index = "0",
        paramLabel = "SRC",
        description = "A node name or address, a user (name@), a tag.")
    String src;

    @Parameters(
        index = "1",
        paramLabel = "DST[:PORT]",
        description = "The same, with a port; [IPv6]:PORT.")
    String dst;

    @Option(names = "--proto", description = "tcp (default), udp, icmp, ... or a number.")
    String proto;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    void run(PrintWriter out) throws Exception {
      Map<String, Object> body = new HashMap<>();
      body.put("src", src);
      body.put("dst", dst);
      if (proto != null) body.put("proto", proto);
      JsonNode answer = server.post("policy/why", body);
      if (json) {
        printJson(out, answer);
      } else {
        out.println(answer.path("explanation").asText());
      }
    }
  }

  @Command(
      name = "clear",
      mixinStandardHelpOptions = true,
      description = "Remove the policy: every node may reach every other again.")
  static final class Clear extends AdminCommand {
    @Override
    void run(PrintWriter out) throws Exception {
      JsonNode current = server.delete("policy");
      out.println(
          "no policy is set (version "
              + current.path("version").asLong()
              + "): every node may reach every other");
    }
  }
}
