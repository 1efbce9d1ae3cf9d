package dev.trellis.system.harness;

import dev.trellis.system.netns.Netns;
import java.io.PrintStream;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.LifecycleMethodExecutionExceptionHandler;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;
import org.opentest4j.TestAbortedException;

/**
 * The one dump-on-failure mechanism of the system tests. When a test or one of its set-up or
 * tear-down methods fails (a skip is no failure), it prints to stdout every open {@link Source} (a
 * control lab, a campus testbed: process logs, agent status, wg show, router rules) and then every
 * open {@link Netns} bed (addresses, WireGuard state, tracked process output). Used as a JUnit
 * extension ({@code @ExtendWith(FailureDump.class)}), or around a bed a test builds and closes
 * itself with {@link #around}.
 */
public final class FailureDump
    implements TestExecutionExceptionHandler, LifecycleMethodExecutionExceptionHandler {
  private static final Set<Source> OPEN = ConcurrentHashMap.newKeySet();

  /** Something whose state is worth printing when a test fails while it is open. */
  public interface Source {
    void dumpDiagnostics(PrintStream out);
  }

  /** Dumped on failures from now until {@link #forget}. */
  public static void track(Source source) {
    OPEN.add(source);
  }

  public static void forget(Source source) {
    OPEN.remove(source);
  }

  /** What a test does with a bed; may throw anything. */
  @FunctionalInterface
  public interface Body<T> {
    void run(T bed) throws Exception;
  }

  /**
   * Runs {@code body} on {@code bed}, dumps everything open if it fails, and closes {@code bed} in
   * any case.
   */
  public static <T extends AutoCloseable> void around(T bed, Body<? super T> body)
      throws Exception {
    try (bed) {
      try {
        body.run(bed);
      } catch (Exception | Error e) {
        dump(String.valueOf(bed), e);
        throw e;
      }
    }
  }

  @Override
  public void handleTestExecutionException(ExtensionContext context, Throwable throwable)
      throws Throwable {
    throw dumped(context, throwable);
  }

  @Override
  public void handleBeforeAllMethodExecutionException(ExtensionContext context, Throwable throwable)
      throws Throwable {
    throw dumped(context, throwable);
  }

  @Override
  public void handleBeforeEachMethodExecutionException(
      ExtensionContext context, Throwable throwable) throws Throwable {
    throw dumped(context, throwable);
  }

  @Override
  public void handleAfterEachMethodExecutionException(ExtensionContext context, Throwable throwable)
      throws Throwable {
    throw dumped(context, throwable);
  }

  private static Throwable dumped(ExtensionContext context, Throwable throwable) {
    dump(context.getDisplayName(), throwable);
    return throwable;
  }

  private static void dump(String what, Throwable throwable) {
    if (throwable instanceof TestAbortedException) {
      return;
    }
    PrintStream out = System.out;
    out.println("[harness] " + what + " failed: " + throwable);
    for (Source source : OPEN) {
      try {
        source.dumpDiagnostics(out);
      } catch (RuntimeException e) {
        out.println("[harness] diagnostics of " + source + " failed: " + e);
      }
    }
    for (Netns bed : Netns.open()) {
      try {
        bed.dumpDiagnostics(out);
      } catch (RuntimeException e) {
        out.println("[harness] diagnostics of " + bed + " failed: " + e);
      }
    }
  }
}
