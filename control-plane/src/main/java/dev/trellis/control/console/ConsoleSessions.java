package dev.trellis.control.console;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The web console's one-time login links and its sessions, in this server's memory (a link works at
 * the server that made it; a restart logs everyone out). A link's token is good once, for {@link
 * #LINK_LIFETIME}; a session's cookie for {@link #SESSION_LIFETIME}. Only SHA-256 digests of tokens
 * and cookies are kept, so a lookup's timing tells nothing about a secret and a memory dump holds
 * none.
 *
 * <p>Threads: any; the maps are concurrent and each token is removed atomically when used.
 */
public final class ConsoleSessions {
  public static final Duration LINK_LIFETIME = Duration.ofMinutes(5);
  public static final Duration SESSION_LIFETIME = Duration.ofHours(12);

  /** At most this many links and sessions each; beyond it the expired go, then the oldest. */
  static final int MAX_ENTRIES = 1000;

  private static final SecureRandom RANDOM = new SecureRandom();

  private final Clock clock;
  private final Map<String, Instant> links = new ConcurrentHashMap<>();
  private final Map<String, Instant> sessions = new ConcurrentHashMap<>();

  public ConsoleSessions(Clock clock) {
    this.clock = clock;
  }

  /** A new one-time login token (URL-safe), good for {@link #LINK_LIFETIME}. */
  public String newLink() {
    return put(links, LINK_LIFETIME);
  }

  /** Uses up {@code token}: a new session's cookie value, or null if it is unknown, used or old. */
  public String redeem(String token) {
    if (token == null || token.isEmpty()) {
      return null;
    }
    Instant expires = links.remove(digest(token));
    if (expires == null || !clock.instant().isBefore(expires)) {
      return null;
    }
    return newSession();
  }

  /** A session for someone who showed a valid API key. */
  public String newSession() {
    return put(sessions, SESSION_LIFETIME);
  }

  /** Whether {@code cookie} is a live session. */
  public boolean valid(String cookie) {
    if (cookie == null || cookie.isEmpty()) {
      return false;
    }
    String key = digest(cookie);
    Instant expires = sessions.get(key);
    if (expires == null) {
      return false;
    }
    if (!clock.instant().isBefore(expires)) {
      sessions.remove(key);
      return false;
    }
    return true;
  }

  public void end(String cookie) {
    if (cookie != null) {
      sessions.remove(digest(cookie));
    }
  }

  private String put(Map<String, Instant> map, Duration lifetime) {
    Instant now = clock.instant();
    if (map.size() >= MAX_ENTRIES) {
      map.values().removeIf(expires -> !now.isBefore(expires));
      while (map.size() >= MAX_ENTRIES) {
        map.entrySet().stream()
            .min(Map.Entry.comparingByValue())
            .ifPresent(oldest -> map.remove(oldest.getKey()));
      }
    }
    byte[] secret = new byte[32];
    RANDOM.nextBytes(secret);
    String token = Base64.getUrlEncoder().withoutPadding().encodeToString(secret);
    map.put(digest(token), now.plus(lifetime));
    return token;
  }

  private static String digest(String secret) {
    try {
      return HexFormat.of()
          .formatHex(
              MessageDigest.getInstance("SHA-256").digest(secret.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
