package dev.trellis.dataplane.agent;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/** Configures the interface with iproute2's `ip` (needs CAP_NET_ADMIN). */
public final class IpCommandNetwork implements NetworkConfigurator {
    private static final Logger LOG = Logger.getLogger(IpCommandNetwork.class.getName());

    private final String interfaceName;
    private final Set<String> addresses = new LinkedHashSet<>();
    private final Set<String> routes = new LinkedHashSet<>();

    public IpCommandNetwork(String interfaceName) {
        this.interfaceName = interfaceName;
    }

    @Override
    public synchronized void apply(List<InetAddress> wanted, List<String> wantedRoutes) throws IOException {
        Set<String> nextAddresses = new LinkedHashSet<>();
        for (InetAddress a : wanted) {
            nextAddresses.add(Endpoints.address(a) + (a instanceof Inet4Address ? "/32" : "/128"));
        }
        for (String old : new ArrayList<>(addresses)) {
            if (!nextAddresses.contains(old)) {
                runQuietly("ip", "addr", "del", old, "dev", interfaceName);
                addresses.remove(old);
            }
        }
        for (String address : nextAddresses) {
            run(address.contains(":") ? List.of("ip", "-6", "addr", "replace", address, "dev", interfaceName)
                    : List.of("ip", "addr", "replace", address, "dev", interfaceName));
            addresses.add(address);
        }
        run(List.of("ip", "link", "set", interfaceName, "up"));
        Set<String> nextRoutes = new LinkedHashSet<>(wantedRoutes);
        for (String old : new ArrayList<>(routes)) {
            if (!nextRoutes.contains(old)) {
                runQuietly("ip", "route", "del", old, "dev", interfaceName);
                routes.remove(old);
            }
        }
        for (String route : nextRoutes) {
            run(route.contains(":") ? List.of("ip", "-6", "route", "replace", route, "dev", interfaceName)
                    : List.of("ip", "route", "replace", route, "dev", interfaceName));
            routes.add(route);
        }
    }

    @Override
    public synchronized void clear() {
        for (String route : routes) {
            runQuietly("ip", "route", "del", route, "dev", interfaceName);
        }
        routes.clear();
        for (String address : addresses) {
            runQuietly("ip", "addr", "del", address, "dev", interfaceName);
        }
        addresses.clear();
    }

    private void runQuietly(String... command) {
        try {
            run(List.of(command));
        } catch (IOException e) {
            LOG.fine(e.getMessage());
        }
    }

    private static void run(List<String> command) throws IOException {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new IOException(String.join(" ", command) + ": no answer within 10 s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
            throw new IOException(String.join(" ", command) + ": interrupted");
        }
        if (process.exitValue() != 0) {
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
            throw new IOException(String.join(" ", command) + " failed (" + process.exitValue() + "): " + output);
        }
    }
}
