package dev.trellis.system.netns;

import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/** On a failing test, prints the state of every open test bed (addresses, wg show, daemon logs) to stdout. */
public final class NetnsDiagnostics implements TestExecutionExceptionHandler {
    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        System.out.println("[netns] " + context.getDisplayName() + " failed: " + throwable);
        for (Netns bed : Netns.open()) {
            try {
                bed.dumpDiagnostics(System.out);
            } catch (RuntimeException e) {
                System.out.println("[netns] diagnostics failed: " + e);
            }
        }
        throw throwable;
    }
}
