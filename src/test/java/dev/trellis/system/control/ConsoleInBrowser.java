package dev.trellis.system.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.trellis.system.harness.Browser;
import dev.trellis.system.harness.Trellis;
import dev.trellis.system.harness.TrellisAgentProcess;
import dev.trellis.system.harness.TrellisServerProcess;
import dev.trellis.system.netns.Tools;
import dev.trellis.system.netns.WgImpl;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.openqa.selenium.By;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.support.ui.Select;

/**
 * The web console in headless Chromium against the lab's real server and agents: what a person sees
 * without a session (nothing), after a one-time link from {@code trellis console} (the nodes, a
 * relayed pair shown as relayed through its region, relays, cluster, policy, quality charts), a
 * node going offline on the open page within seconds, and accessibility basics. Screenshots of each
 * view go to target/system-tests/console/ (docs/console/ has the README's copies).
 */
final class ConsoleInBrowser {
  private static final Duration SHOWN = Duration.ofSeconds(30);
  private static final Path SCREENSHOTS = WgImpl.home().resolve("target/system-tests/console");

  private ConsoleInBrowser() {}

  /** The state ("online"/"offline") of a node's row in the nodes table, or null if absent. */
  private static String rowState(WebDriver d, String hostname) {
    List<WebElement> rows =
        d.findElements(By.cssSelector("#nodes-body tr[data-node='" + hostname + "']"));
    return rows.isEmpty() ? null : rows.get(0).getAttribute("data-state");
  }

  private static String cell(WebDriver d, String from, String to) {
    List<WebElement> cells =
        d.findElements(
            By.cssSelector("#matrix td[data-from='" + from + "'][data-to='" + to + "']"));
    return cells.isEmpty() ? "" : cells.get(0).getText();
  }

  /**
   * {@code w} is a node started by the caller whose UDP to everyone but the server is dropped (it
   * reaches its peers through the relay only); this stops it to see it go offline.
   */
  static void check(
      TrellisServerProcess server,
      TrellisAgentProcess a,
      TrellisAgentProcess b,
      TrellisAgentProcess w)
      throws Exception {
    try (Browser browser = Browser.start()) {
      // No session: the login form, and none of the network's data.
      browser.open(server.url() + "/console/");
      browser.await("the login form", SHOWN, d -> d.findElement(By.id("login")).isDisplayed());
      String anonymous = browser.text();
      assertFalse(anonymous.contains(a.hostname()), anonymous);
      assertFalse(browser.driver().findElement(By.id("views")).isDisplayed());
      Object status =
          ((org.openqa.selenium.JavascriptExecutor) browser.driver())
              .executeAsyncScript(
                  "const done = arguments[arguments.length - 1];"
                      + " fetch('/api/v1/nodes', {headers: {'X-Trellis-Console': '1'}})"
                      + ".then(r => done(r.status));");
      assertEquals(401L, status, "the API gives nothing without a session");

      // `trellis console` on the server host: a one-time link that logs the browser in.
      String printed =
          Trellis.run(
                  server.namespace(),
                  TrellisServerProcess.ADMIN_TIMEOUT,
                  "console",
                  "--data-dir",
                  server.dataDir().toString())
              .orThrow()
              .stdout();
      String link = printed.lines().findFirst().orElseThrow().strip();
      assertTrue(link.contains("/console/login?token="), printed);
      browser.open(link);
      browser.await(
          "the three nodes online",
          SHOWN,
          d ->
              "online".equals(rowState(d, a.hostname()))
                  && "online".equals(rowState(d, b.hostname()))
                  && "online".equals(rowState(d, w.hostname())));
      assertTrue(browser.driver().getCurrentUrl().endsWith("/console/"), "the token left the URL");

      // The relayed pair is shown as relayed, through the relay's region; the direct one direct.
      browser.await(
          w.hostname() + " -> " + a.hostname() + " shown relayed through region default",
          Duration.ofSeconds(60),
          d -> cell(d, w.hostname(), a.hostname()).startsWith("relay default"));
      String text = browser.text();
      assertTrue(text.contains("default"), "the relay's region in the relays view");
      assertTrue(text.contains("control, relay") && text.contains("Up"), "the cluster member");
      assertTrue(text.contains("No policy is set"), "the policy view");

      // The pair's quality over time.
      new Select(browser.driver().findElement(By.id("q-from"))).selectByVisibleText(w.hostname());
      new Select(browser.driver().findElement(By.id("q-to"))).selectByVisibleText(a.hostname());
      browser.await(
          "a round-trip chart for " + w.hostname() + " -> " + a.hostname(),
          SHOWN,
          d -> !d.findElements(By.cssSelector("#chart-rtt polyline")).isEmpty());

      // Accessibility basics: a language, one h1, every control labelled, header cells scoped,
      // charts named.
      Object problems =
          browser.script(
              "const p = [];"
                  + " if (!document.documentElement.lang) p.push('no lang');"
                  + " if (document.querySelectorAll('h1').length !== 1) p.push('not one h1');"
                  + " for (const e of document.querySelectorAll('input, select'))"
                  + "   if (e.labels.length === 0) p.push('unlabelled ' + e.id);"
                  + " for (const e of document.querySelectorAll('button'))"
                  + "   if (!e.textContent.trim()) p.push('button without text');"
                  + " for (const t of document.querySelectorAll('th'))"
                  + "   if (!t.scope) p.push('th without scope: ' + t.textContent);"
                  + " for (const s of document.querySelectorAll('svg'))"
                  + "   if (!s.getAttribute('aria-label')) p.push('svg without label');"
                  + " return p.join('; ');");
      assertEquals("", problems, "accessibility basics");

      for (String view : List.of("nodes", "paths", "relays", "cluster", "policy", "quality")) {
        browser.screenshot(
            browser.driver().findElement(By.id(view)), SCREENSHOTS.resolve(view + ".png"));
      }

      // A node going offline shows on the open page within seconds, without a reload.
      browser.script("window.trellisNotReloaded = true;");
      w.stop();
      browser.await(
          w.hostname() + " offline",
          Duration.ofSeconds(20),
          d -> "offline".equals(rowState(d, w.hostname())));
      assertEquals(Boolean.TRUE, browser.script("return window.trellisNotReloaded === true;"));

      // Logging out leaves nothing to see.
      browser.driver().findElement(By.id("logout")).click();
      browser.await(
          "the login form again", SHOWN, d -> d.findElement(By.id("login")).isDisplayed());
      browser.open(server.url() + "/console/");
      browser.await(
          "the login form after a reload", SHOWN, d -> d.findElement(By.id("login")).isDisplayed());
      assertFalse(browser.text().contains(a.hostname()));
    }
  }

  /** Drops {@code node}'s UDP to and from everyone but the server: its peers only by relay. */
  static void relayOnly(TrellisAgentProcess node, String serverAddress) {
    String iptables = Tools.require("iptables");
    node.namespace()
        .exec(iptables, "-A", "OUTPUT", "-p", "udp", "!", "-d", serverAddress, "-j", "DROP");
    node.namespace()
        .exec(iptables, "-A", "INPUT", "-p", "udp", "!", "-s", serverAddress, "-j", "DROP");
  }

  static Map<String, String> reportingOften() {
    return Map.of("TRELLIS_QUALITY_REPORT_SECONDS", "5");
  }
}
