package dev.trellis.system.harness;

import dev.trellis.system.netns.Tools;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.Function;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * A real browser for the web console's tests: Debian's headless Chromium, driven through Debian's
 * chromium-driver by Selenium. Both are required (CI installs them); without them the test fails
 * with what to install. Selenium's own driver download is never used.
 */
public final class Browser implements AutoCloseable {
  private final ChromeDriver driver;

  private Browser(ChromeDriver driver) {
    this.driver = driver;
  }

  public static Browser start() {
    String chromium = required("chromium");
    String chromedriver = required("chromedriver");
    ChromeOptions options = new ChromeOptions();
    options.setBinary(chromium);
    options.addArguments(
        "--headless=new",
        "--no-sandbox", // the tests run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,3000", // every view in one viewport, for whole-element screenshots
        "--no-first-run");
    ChromeDriverService service =
        new ChromeDriverService.Builder()
            .usingDriverExecutable(Path.of(chromedriver).toFile())
            .usingAnyFreePort()
            .build();
    return new Browser(new ChromeDriver(service, options));
  }

  private static String required(String name) {
    String found = Tools.find(name);
    if (found == null) {
      throw new IllegalStateException(
          name
              + " not found: the console's browser tests need Debian's chromium and"
              + " chromium-driver (apt-get install chromium chromium-driver); .ci/run installs"
              + " them");
    }
    return found;
  }

  public WebDriver driver() {
    return driver;
  }

  public void open(String url) {
    driver.get(url);
  }

  /** Waits until {@code condition} holds of the page (the page updating itself, no reload). */
  public <T> T await(String what, Duration timeout, Function<WebDriver, T> condition) {
    try {
      return new WebDriverWait(driver, timeout, Duration.ofMillis(200)).until(condition::apply);
    } catch (org.openqa.selenium.TimeoutException e) {
      throw new AssertionError(
          "the page never showed " + what + " within " + timeout + "; it showed:\n" + text(), e);
    }
  }

  /** What a person reads on the page (the visible text). */
  public String text() {
    return driver.findElement(By.tagName("body")).getText();
  }

  public Object script(String javascript) {
    return ((JavascriptExecutor) driver).executeScript(javascript);
  }

  /** A screenshot of one element (a view of the console) as PNG, into {@code file}. */
  public void screenshot(WebElement element, Path file) throws IOException {
    Files.createDirectories(file.getParent());
    Files.write(file, element.getScreenshotAs(OutputType.BYTES));
  }

  @Override
  public void close() {
    driver.quit();
  }
}
