package dev.trellis.system.control;

import dev.trellis.system.netns.Netns;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.LifecycleMethodExecutionExceptionHandler;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/**
 * On a failing test or set-up, prints every open control lab (server and agent log tails, agent status,
 * wg show, nodes list) and every open netns test bed (addresses, tracked process output) to stdout.
 */
public final class ControlDiagnostics implements TestExecutionExceptionHandler, LifecycleMethodExecutionExceptionHandler {
    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        dump(context, throwable);
        throw throwable;
    }

    @Override
    public void handleBeforeAllMethodExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        dump(context, throwable);
        throw throwable;
    }

    @Override
    public void handleBeforeEachMethodExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        dump(context, throwable);
        throw throwable;
    }

    @Override
    public void handleAfterEachMethodExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        dump(context, throwable);
        throw throwable;
    }

    private static void dump(ExtensionContext context, Throwable throwable) {
        if (isSkip(throwable)) {
            return;
        }
        System.out.println("[control] " + context.getDisplayName() + " failed: " + throwable);
        for (ControlLab lab : ControlLab.open()) {
            try {
                lab.dumpDiagnostics(System.out);
            } catch (RuntimeException e) {
                System.out.println("[control] lab diagnostics failed: " + e);
            }
        }
        for (Netns bed : Netns.open()) {
            try {
                bed.dumpDiagnostics(System.out);
            } catch (RuntimeException e) {
                System.out.println("[control] netns diagnostics failed: " + e);
            }
        }
    }

    private static boolean isSkip(Throwable t) {
        return t instanceof org.opentest4j.TestAbortedException;
    }
}
