"""Headless Chromium driven by Selenium, for the web UI tests.

Uses the system's Chromium and chromedriver (Debian packages ``chromium``, ``chromium-driver``);
nothing is downloaded. Each page a test wants a person to see is saved as a PNG in
``artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from passerelle.engine.manage.ui import onboarding

from support.api_client import LiveApi

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WINDOW = (1366, 900)  # a laptop screen
WAIT = 10.0
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    # the management listener's certificate is self-signed, made fresh for every test
    "--ignore-certificate-errors",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


class Browser:
    """One Chromium with a fresh profile; ``base`` is the management URL of the current test."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = Path(tempfile.mkdtemp(prefix="passerelle-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        options.accept_insecure_certs = True
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(WAIT)
        self.base = ""
        self.prefix = ""

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def start(self, base: str, prefix: str) -> None:
        """A new test: a new site and a clean cookie jar."""
        self.base, self.prefix = base, prefix
        self.driver.delete_all_cookies()

    # -- navigation ----------------------------------------------------------------------

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    @property
    def path(self) -> str:
        url = self.driver.current_url
        return url[len(self.base) :] if url.startswith(self.base) else url

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.find(css).text

    def wait(self, condition: Callable[[Any], Any], timeout: float = WAIT) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition)

    def wait_for(self, css: str) -> Any:
        return self.wait(lambda driver: self.find_all(css) and self.find(css))

    def submit(self, css: str, confirm: bool = False) -> None:
        """Click a submit button (accepting its confirmation when ``confirm``) and wait until
        the next page has replaced this one."""
        from selenium.webdriver.support import expected_conditions

        page = self.find("html")
        self.find(css).click()
        if confirm:
            self.wait(expected_conditions.alert_is_present()).accept()
        self.wait(lambda _driver: _replaced(page))

    def fill(self, css: str, value: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def choose(self, css: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find(css)).select_by_value(value)

    # -- evidence ------------------------------------------------------------------------

    def shot(self, name: str) -> Path:
        """The whole page as ``<prefix>-<name>.png``."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(WINDOW[0], max(WINDOW[1], min(int(height) + 140, 6000)))
        path = SCREENSHOTS / f"{self.prefix}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(*WINDOW)
        return path

    # -- the page's own requests ------------------------------------------------------------

    def fetch(self, method: str, path: str, body: Any = None, csrf: bool = True) -> dict[str, Any]:
        """A request made by the page's script, with the browser's cookies, as the UI's own
        script would make it; ``csrf`` adds the X-CSRF-Token header from the readable cookie."""
        script = """
            const [method, path, body, csrf, done] = arguments;
            const headers = {"Content-Type": "application/json"};
            if (csrf) {
              const match = document.cookie.match(/(?:^|; )passerelle_csrf=([^;]*)/);
              if (match) headers["X-CSRF-Token"] = decodeURIComponent(match[1]);
            }
            fetch(path, {method, headers, credentials: "same-origin",
                         body: body === null ? undefined : body})
              .then(async (r) => done({status: r.status, text: await r.text()}))
              .catch((e) => done({status: 0, text: String(e)}));
        """
        payload = None if body is None else json.dumps(body)
        return self.driver.execute_async_script(script, method, path, payload, csrf)


PASSWORD = "browser-test-password"
SERVICE = {
    "name": "web",
    "address": "127.0.0.81",
    "ports": [8443],
    "real_servers": [{"address": "127.0.0.82", "port": 8080}],
}


def log_in(browser: Browser, api: LiveApi) -> None:
    """An administrator past the first-login steps, logged in."""
    time.sleep(0.01)  # a password change must come after the account's creation time
    api.plane.users.set_password("admin", PASSWORD)
    onboarding.record(api.directory, "eula", "admin", sha256=onboarding.eula_digest())
    onboarding.record(api.directory, "licence", "admin", choice="demo")
    browser.open("/login")
    browser.fill("#password", PASSWORD)
    browser.submit("#login")
    assert browser.path == "/dashboard"


def _replaced(element: Any) -> bool:
    """Whether ``element``'s page is gone. Asked mid-navigation, chromedriver may answer with
    an inspector error instead of a stale reference: that, too, means the page is going."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "inspector error" in str(exc) or "Cannot find context" in str(exc):
            return True
        raise
    return False
