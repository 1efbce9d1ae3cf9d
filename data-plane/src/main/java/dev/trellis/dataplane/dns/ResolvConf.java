package dev.trellis.dataplane.dns;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host's resolver configuration when no systemd-resolved manages it: {@code /etc/resolv.conf}
 * pointed at the node's resolver, with the base domain first in the search list. The original is
 * kept in the agent's state directory (its bytes, or the symlink it was) and put back byte for byte
 * on {@link #restore}, but only while the file is still the one Trellis wrote (its first line says
 * so): a file someone changed since is left alone. {@link #restore} also cleans up after an agent
 * that was killed before it could.
 *
 * <p>Threads: called on the agent loop only.
 */
public final class ResolvConf implements HostResolver {
  private static final Logger LOG = LoggerFactory.getLogger(ResolvConf.class);

  static final String MARKER = "# Written by trellis";
  private static final String BACKUP = "resolv.conf.orig";
  private static final String BACKUP_LINK = "resolv.conf.orig-link";

  private final Path file;
  private final Path backup;
  private final Path backupLink;

  public ResolvConf(Path file, Path stateDir) {
    this.file = file;
    this.backup = stateDir.resolve(BACKUP);
    this.backupLink = stateDir.resolve(BACKUP_LINK);
  }

  /** Whether the file in place is the one Trellis wrote. */
  public boolean ours() {
    try {
      return !Files.isSymbolicLink(file)
          && Files.exists(file)
          && Files.readString(file, StandardCharsets.UTF_8).startsWith(MARKER);
    } catch (IOException e) {
      return false;
    }
  }

  /** The name servers the host had (from the backup while ours is in place), port 53. */
  @Override
  public List<InetSocketAddress> upstream() {
    String text;
    try {
      text = Files.exists(backup) ? Files.readString(backup) : ours() ? "" : Files.readString(file);
    } catch (IOException e) {
      return List.of();
    }
    List<InetSocketAddress> out = new ArrayList<>();
    for (String line : text.lines().toList()) {
      String[] f = line.strip().split("\\s+");
      if (f.length >= 2 && f[0].equals("nameserver")) {
        try {
          out.add(new InetSocketAddress(InetAddress.ofLiteral(f[1].replaceAll("%.*", "")), 53));
        } catch (IllegalArgumentException e) {
          // not an address
        }
      }
    }
    return out;
  }

  @Override
  public String mode() {
    return "file";
  }

  /** Reverse names need no routing here: every question reaches the node's resolver. */
  @Override
  public void apply(InetAddress server, String baseDomain, List<String> reverseZones)
      throws IOException {
    apply(server, baseDomain);
  }

  /** Points the host at {@code server}, searching {@code baseDomain} first. */
  public void apply(InetAddress server, String baseDomain) throws IOException {
    if (!ours()) {
      saveOriginal();
    }
    String original = Files.exists(backup) ? Files.readString(backup) : "";
    Set<String> search = new LinkedHashSet<>();
    search.add(baseDomain);
    List<String> options = new ArrayList<>();
    for (String line : original.lines().toList()) {
      String[] f = line.strip().split("\\s+");
      if (f.length >= 2 && (f[0].equals("search") || f[0].equals("domain"))) {
        for (int i = 1; i < f.length; i++) search.add(f[i]);
      } else if (f.length >= 2 && f[0].equals("options")) {
        options.add(line.strip());
      }
    }
    StringBuilder text = new StringBuilder();
    text.append(MARKER)
        .append(" (its agent's state directory holds the original, restored by trellis down)\n");
    text.append("nameserver ").append(server.getHostAddress()).append('\n');
    text.append("search ").append(String.join(" ", search)).append('\n');
    options.forEach(o -> text.append(o).append('\n'));
    write(text.toString().getBytes(StandardCharsets.UTF_8));
  }

  /** Puts the original back if the file is still ours; forgets the backup either way. */
  @Override
  public void restore() {
    if (!Files.exists(backup) && !Files.exists(backupLink)) return;
    try {
      if (ours()) {
        if (Files.exists(backupLink)) {
          Path target = Path.of(Files.readString(backupLink));
          Path tmp = file.resolveSibling(".resolv.conf.trellis-" + ProcessHandle.current().pid());
          Files.deleteIfExists(tmp);
          Files.createSymbolicLink(tmp, target);
          Files.move(
              tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } else {
          write(Files.readAllBytes(backup));
        }
        LOG.info("restored {}", file);
      } else {
        LOG.warn("{} was changed by someone else since trellis wrote it: left as it is", file);
      }
      Files.deleteIfExists(backup);
      Files.deleteIfExists(backupLink);
    } catch (IOException e) {
      LOG.warn("cannot restore {}: {}", file, e.getMessage());
    }
  }

  private void saveOriginal() throws IOException {
    if (Files.isSymbolicLink(file)) {
      Files.writeString(backupLink, Files.readSymbolicLink(file).toString());
    }
    byte[] bytes = Files.exists(file) ? Files.readAllBytes(file) : new byte[0];
    Path tmp = backup.resolveSibling(BACKUP + ".tmp");
    Files.write(tmp, bytes);
    Files.move(tmp, backup, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  /**
   * Replaces the file atomically (a rename next to it); where it cannot be renamed over (a bind
   * mount, as {@code ip netns exec} makes) it is rewritten in place.
   */
  private void write(byte[] bytes) throws IOException {
    Path tmp = file.resolveSibling(".resolv.conf.trellis-" + ProcessHandle.current().pid());
    try {
      Files.write(tmp, bytes);
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } catch (FileSystemException e) {
      Files.deleteIfExists(tmp);
      if (Files.isSymbolicLink(file)) throw e;
      Files.write(file, bytes);
    }
    if (!Files.exists(file, LinkOption.NOFOLLOW_LINKS)) {
      throw new IOException(file + " is gone after writing it");
    }
  }
}
