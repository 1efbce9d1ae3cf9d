package dev.trellis.dataplane.agent;

import dev.trellis.dataplane.agent.AgentControl.Outcome;
import dev.trellis.proto.control.ControlMessage;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's connection to the coordination server (compare tailscale's {@code
 * control/controlclient/auto.go}): one {@link Session} at a time, a login answered within {@link
 * AgentTiming#LOGIN_TIMEOUT}, pings and silence detection while logged in, and — when the session
 * breaks and the node still wants to be connected — reconnects with exponential backoff, each
 * attempt at the next control URL in turn (the saved one first, then every replica the map named).
 * What the server says goes to the {@link Listener}.
 *
 * <p>Threads: runs on the agent's loop thread. Every method must be called there; callbacks from
 * the control client are queued onto it, and callbacks of a replaced session are ignored.
 */
final class ControlConnection {
  private static final Logger LOG = LoggerFactory.getLogger(ControlConnection.class);

  /** Opens a control connection; {@link ControlClient#connect} in production. */
  public interface Connector {
    CompletableFuture<ControlClient> connect(
        URI loginServer, byte[] machinePrivateKey, ControlClient.Listener listener);
  }

  /** What the agent does with what the server says; called on the loop thread. */
  interface Listener {
    /** The Login message for a session that just connected. */
    ControlMessage.Login login(Session s);

    void onLoginResult(Session s, ControlMessage.LoginResult result);

    /** Anything else the server sent during a logged-in session. */
    void onMessage(Session s, ControlMessage message);

    /** The session broke or was refused; {@code message} is meant for a person. */
    void onFailed(Session s, String message);

    /** The backoff after a failure ran out and the node still wants to be connected. */
    void reconnectDue();
  }

  /** One control connection, from connecting to closing. */
  final class Session implements ControlClient.Listener {
    final URI server;
    final String authKey;
    final String hostname;
    final CompletableFuture<Outcome> pendingUp;

    /** Connected only to tell the server this node logs out. */
    final boolean logoutAfterLogin;

    ControlClient client;
    boolean loggedIn;
    private long lastHeardNanos = System.nanoTime();
    private ScheduledFuture<?> loginTimeout;

    private Session(
        URI server,
        String authKey,
        String hostname,
        CompletableFuture<Outcome> pendingUp,
        boolean logoutAfterLogin) {
      this.server = server;
      this.authKey = authKey;
      this.hostname = hostname;
      this.pendingUp = pendingUp;
      this.logoutAfterLogin = logoutAfterLogin;
    }

    @Override
    public void onMessage(ControlMessage message) {
      runOnLoop(() -> handle(this, message));
    }

    @Override
    public void onClosed(String reason) {
      runOnLoop(() -> fail(this, reason));
    }

    void answer(Outcome outcome) {
      if (pendingUp != null) {
        pendingUp.complete(outcome);
      }
    }

    private void cancelLoginTimeout() {
      if (loginTimeout != null) {
        loginTimeout.cancel(false);
      }
    }
  }

  private final ScheduledExecutorService loop;
  private final Connector connector;
  private final byte[] machinePrivateKey;
  private final Listener listener;

  /** Whether the node wants to be connected (logged in and up), from the saved state. */
  private final BooleanSupplier wanted;

  /** The saved login server, null when none. */
  private final Supplier<String> savedServer;

  /** The control URLs of every replica, from the last map. */
  private final Supplier<List<String>> replicas;

  // ---- loop-thread state ----
  private Session current;
  private int backoffAttempt;
  private ScheduledFuture<?> reconnect;

  /** The session whose login {@link #retry} will try again, with its waiting `up`; or null. */
  private Session retrying;

  private long pingId;

  ControlConnection(
      ScheduledExecutorService loop,
      Connector connector,
      byte[] machinePrivateKey,
      Listener listener,
      BooleanSupplier wanted,
      Supplier<String> savedServer,
      Supplier<List<String>> replicas) {
    this.loop = loop;
    this.connector = connector;
    this.machinePrivateKey = machinePrivateKey;
    this.listener = listener;
    this.wanted = wanted;
    this.savedServer = savedServer;
    this.replicas = replicas;
  }

  /** Starts the keepalive timer. */
  void start() {
    long ping = AgentTiming.CONTROL_PING_INTERVAL.toMillis();
    loop.scheduleWithFixedDelay(guarded(this::keepalive), ping, ping, TimeUnit.MILLISECONDS);
  }

  /** The session, or null. */
  Session current() {
    return current;
  }

  /** The logged-in session, or null. */
  Session loggedIn() {
    Session s = current;
    return s != null && s.loggedIn && s.client != null ? s : null;
  }

  /** Opens a new session (the caller ended the previous one). */
  void open(
      URI server,
      String authKey,
      String hostname,
      CompletableFuture<Outcome> pendingUp,
      boolean logoutAfterLogin) {
    Session s = new Session(server, authKey, hostname, pendingUp, logoutAfterLogin);
    current = s;
    connector
        .connect(server, machinePrivateKey, s)
        .whenComplete(
            (client, error) ->
                runOnLoop(
                    () -> {
                      if (current != s) {
                        if (client != null) {
                          client.close();
                        }
                        return;
                      }
                      if (error != null) {
                        fail(s, ControlClient.describe(error));
                        return;
                      }
                      s.client = client;
                      if (!client.isOpen()) {
                        fail(s, "the server closed the connection right after the handshake");
                        return;
                      }
                      s.lastHeardNanos = System.nanoTime();
                      client.send(listener.login(s));
                      s.loginTimeout =
                          loop.schedule(
                              guarded(
                                  () -> {
                                    if (current == s && !s.loggedIn) {
                                      fail(
                                          s,
                                          "no answer to the login from "
                                              + display(s.server)
                                              + " within "
                                              + AgentTiming.LOGIN_TIMEOUT.toSeconds()
                                              + " s");
                                    }
                                  }),
                              AgentTiming.LOGIN_TIMEOUT.toMillis(),
                              TimeUnit.MILLISECONDS);
                    }));
  }

  /**
   * Resumes the saved registration: after a failed attempt, at the next replica in turn.
   *
   * @return null, or why it cannot
   */
  String resume(String hostname) {
    URI uri;
    try {
      uri = ControlClient.normalize(URI.create(savedServer.get()));
    } catch (IllegalArgumentException e) {
      return "saved login server is unusable: " + savedServer.get();
    }
    List<URI> candidates = candidates(uri);
    open(candidates.get(backoffAttempt % candidates.size()), null, hostname, null, false);
    return null;
  }

  /** Ends the current session without reconnecting (a command replaces or stops it). */
  void end() {
    Session s = current;
    current = null;
    if (s != null) {
      s.cancelLoginTimeout();
      if (s.client != null) {
        s.client.close();
      }
      s.answer(Outcome.failure("cancelled by a newer command"));
    }
  }

  /** Takes the session out of the connection without closing it (it is used to log out). */
  Session detach() {
    Session s = current;
    current = null;
    if (s != null) {
      s.cancelLoginTimeout();
    }
    return s;
  }

  /** The login was accepted. */
  void loggedIn(Session s) {
    s.cancelLoginTimeout();
    s.loggedIn = true;
    backoffAttempt = 0;
  }

  /** The login was refused: the session ends. */
  void refused(Session s) {
    s.cancelLoginTimeout();
    if (current == s) {
      current = null;
    }
    if (s.client != null) {
      s.client.close();
    }
  }

  /**
   * Tells the server this node logs out, then closes the session; {@code result} (if any) says how
   * it went.
   */
  void logout(Session s, CompletableFuture<Outcome> result) {
    s.client
        .send(new ControlMessage.Logout())
        .orTimeout(AgentTiming.LOGOUT_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
        .whenComplete(
            (v, e) -> {
              s.client.close();
              if (result != null) {
                result.complete(
                    e == null
                        ? Outcome.success(null)
                        : new Outcome(
                            true,
                            "logged out here, but could not tell the server: " + e.getMessage(),
                            null));
              }
            });
  }

  /**
   * The session broke or was refused: tell the listener, answer a waiting `up`, then reconnect if
   * wanted.
   */
  private void fail(Session s, String reason) {
    if (current != s) {
      return;
    }
    current = null;
    s.cancelLoginTimeout();
    if (s.client != null) {
      s.client.close();
    }
    String message =
        s.loggedIn
            ? "lost connection to " + display(s.server) + ": " + reason
            : reason.contains(display(s.server))
                ? reason
                : "cannot reach login server " + display(s.server) + ": " + reason;
    LOG.warn(message);
    listener.onFailed(s, message);
    s.answer(Outcome.failure(message));
    reconnectIfWanted();
  }

  /** Schedules the next attempt with backoff, when the node wants to be connected and is not. */
  void reconnectIfWanted() {
    if (!wanted.getAsBoolean()
        || savedServer.get() == null
        || reconnect != null
        || current != null) {
      return;
    }
    long max = AgentTiming.CONTROL_MAX_BACKOFF.toMillis();
    long base =
        Math.min(max, AgentTiming.CONTROL_FIRST_BACKOFF.toMillis() << Math.min(backoffAttempt, 5));
    long delay =
        Math.min(max, (long) (base * (0.8 + 0.4 * ThreadLocalRandom.current().nextDouble())));
    backoffAttempt++;
    LOG.info(
        "reconnecting to " + savedServer.get() + " (or another replica of it) in " + delay + " ms");
    reconnect =
        loop.schedule(
            guarded(
                () -> {
                  reconnect = null;
                  if (current == null && wanted.getAsBoolean()) {
                    listener.reconnectDue();
                  }
                }),
            delay,
            TimeUnit.MILLISECONDS);
  }

  void cancelReconnect() {
    if (reconnect != null) {
      reconnect.cancel(false);
      reconnect = null;
    }
    if (retrying != null) {
      retrying.answer(Outcome.failure("cancelled by a newer command"));
      retrying = null;
    }
    backoffAttempt = 0;
  }

  /**
   * The server could not finish {@code s}'s login yet (it answered UNAVAILABLE): the same login,
   * with the same waiting `up`, again after {@link AgentTiming#CONTROL_FIRST_BACKOFF}, until the
   * `up` gives up waiting or a newer command replaces it.
   */
  void retry(Session s) {
    cancelReconnect();
    retrying = s;
    reconnect =
        loop.schedule(
            guarded(
                () -> {
                  reconnect = null;
                  retrying = null;
                  if (current == null && !s.pendingUp.isDone()) {
                    open(s.server, s.authKey, s.hostname, s.pendingUp, s.logoutAfterLogin);
                  }
                }),
            AgentTiming.CONTROL_FIRST_BACKOFF.toMillis(),
            TimeUnit.MILLISECONDS);
  }

  private void handle(Session s, ControlMessage message) {
    if (current != s) {
      return;
    }
    s.lastHeardNanos = System.nanoTime();
    switch (message) {
      case ControlMessage.LoginResult r -> listener.onLoginResult(s, r);
      case ControlMessage.Pong p -> {}
      default -> {
        if (s.loggedIn || message instanceof ControlMessage.Goodbye) {
          listener.onMessage(s, message);
        }
      }
    }
  }

  private void keepalive() {
    Session s = current;
    if (s == null || s.client == null) {
      return;
    }
    if (System.nanoTime() - s.lastHeardNanos > AgentTiming.CONTROL_SILENCE_LIMIT.toNanos()) {
      fail(
          s, "no word from the server for " + AgentTiming.CONTROL_SILENCE_LIMIT.toSeconds() + " s");
    } else if (s.loggedIn) {
      s.client.send(new ControlMessage.Ping(++pingId));
    }
  }

  /**
   * The saved login server first, then every other replica the map named; a loopback URL names this
   * host, so it is only taken when the login server is on this host too.
   */
  private List<URI> candidates(URI primary) {
    List<URI> all = new ArrayList<>(List.of(primary));
    for (String u : replicas.get()) {
      try {
        URI other = ControlClient.normalize(URI.create(u));
        if (!all.contains(other) && (!isLoopback(other) || isLoopback(primary))) {
          all.add(other);
        }
      } catch (IllegalArgumentException malformed) {
        LOG.debug("ignoring control URL " + u);
      }
    }
    return all;
  }

  /** Whether the URL's host is a loopback address or "localhost" (no name lookup). */
  static boolean isLoopback(URI uri) {
    String host = uri.getHost();
    if (host == null) {
      return false;
    }
    String h = host.startsWith("[") ? host.substring(1, host.length() - 1) : host;
    return h.equalsIgnoreCase("localhost") || h.startsWith("127.") || h.equals("::1");
  }

  private void runOnLoop(Runnable task) {
    try {
      loop.execute(guarded(task));
    } catch (RejectedExecutionException e) {
      // shutting down
    }
  }

  static Runnable guarded(Runnable task) {
    return () -> {
      try {
        task.run();
      } catch (RuntimeException e) {
        LOG.warn("agent task failed", e);
      }
    };
  }

  /** The URL as a person typed it: without the trailing slash we add for resolving. */
  static String display(URI server) {
    String s = server.toString();
    return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
  }

  static String rejection(URI server, String code, String error) {
    String where = display(server);
    if ("NEEDS_AUTH".equals(code)) {
      return "this node is not logged in to "
          + where
          + " (unknown, expired or logged out); log in with: trellis up --login-server "
          + where
          + " --authkey KEY";
    }
    String what =
        error != null && !error.isBlank()
            ? error
            : switch (code == null ? "" : code) {
              case "EXPIRED" -> "the auth key has expired";
              case "USED" -> "the auth key has already been used";
              case "NOT_FOUND" -> "unknown auth key";
              default -> "no reason given";
            };
    return "login refused by " + where + ": " + what + (code == null ? "" : " (" + code + ")");
  }
}
