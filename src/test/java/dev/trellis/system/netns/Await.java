package dev.trellis.system.netns;

import java.time.Duration;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;
import java.util.function.Supplier;

/** Polls a condition until it holds or a deadline passes; the harness's replacement for sleeps. */
public final class Await {
  private static final Duration POLL = Duration.ofMillis(100);

  private Await() {}

  /**
   * Waits until {@code condition} is true; throws {@link AssertionError} naming {@code what} on
   * timeout.
   */
  public static void until(String what, Duration timeout, BooleanSupplier condition) {
    value(what, timeout, condition::getAsBoolean, Boolean::booleanValue);
  }

  /**
   * Samples {@code supplier} until {@code accept} holds and returns that sample. Exceptions thrown
   * while sampling count as "not yet"; the last sample or exception is reported on timeout.
   */
  public static <T> T value(
      String what, Duration timeout, Supplier<T> supplier, Predicate<? super T> accept) {
    long deadline = System.nanoTime() + timeout.toNanos();
    T last = null;
    RuntimeException lastError = null;
    while (true) {
      try {
        last = supplier.get();
        lastError = null;
        if (accept.test(last)) {
          return last;
        }
      } catch (RuntimeException e) {
        lastError = e;
      }
      if (System.nanoTime() - deadline >= 0) {
        AssertionError failure =
            new AssertionError(
                "timed out after "
                    + timeout.toMillis()
                    + " ms waiting for "
                    + what
                    + (lastError == null
                        ? "; last value: " + last
                        : "; last error: " + lastError.getMessage()));
        if (lastError != null) {
          failure.initCause(lastError);
        }
        throw failure;
      }
      sleep(POLL);
    }
  }

  /** Returns true if {@code condition} becomes true within {@code timeout}, false otherwise. */
  public static boolean within(Duration timeout, BooleanSupplier condition) {
    try {
      until("condition", timeout, condition);
      return true;
    } catch (AssertionError e) {
      return false;
    }
  }

  /** The only sleep in the harness: the pause between polls, or a sampling interval. */
  public static void sleep(Duration d) {
    try {
      Thread.sleep(d);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
  }
}
