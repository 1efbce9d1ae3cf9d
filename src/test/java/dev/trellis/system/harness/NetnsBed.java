package dev.trellis.system.harness;

import dev.trellis.system.netns.Netns;
import dev.trellis.system.netns.Prerequisites;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * A fresh {@link Netns} test bed for every test that declares a {@code Netns} parameter (after any
 * parameterized arguments), closed after the test (its processes stopped, namespaces and scratch
 * directory removed) once {@link FailureDump} has had its chance to print it. Checks the {@link
 * Prerequisites} before the class: without root the tests are skipped visibly.
 */
public final class NetnsBed implements BeforeAllCallback, ParameterResolver {
  private static final ExtensionContext.Namespace STORE =
      ExtensionContext.Namespace.create(NetnsBed.class);

  @Override
  public void beforeAll(ExtensionContext context) {
    Prerequisites.check();
  }

  @Override
  public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
    return parameter.getParameter().getType() == Netns.class;
  }

  @Override
  public Netns resolveParameter(ParameterContext parameter, ExtensionContext context) {
    return context
        .getStore(STORE)
        .getOrComputeIfAbsent("bed", key -> new Closing(Netns.create()), Closing.class)
        .bed();
  }

  /**
   * Closes the bed when JUnit closes the test's store, after the test's exception handlers and
   * after-each methods.
   */
  private record Closing(Netns bed) implements ExtensionContext.Store.CloseableResource {
    @Override
    public void close() {
      bed.close();
    }
  }
}
