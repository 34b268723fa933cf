"""Browser tests: one headless Chromium for the session, a fresh management plane per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.api_client import LiveApi, start_api
from support.browser import Browser, missing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the web UI in headless Chromium")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    browser = Browser()
    browser.driver.set_script_timeout(10)
    yield browser
    browser.quit()


@pytest.fixture
def ui_api(tmp_path: Path) -> Iterator[LiveApi]:
    live = start_api(tmp_path)
    live.plane.app.config["PASSERELLE_HA_STATE"] = str(tmp_path / "ha-state")
    yield live
    live.stop()


@pytest.fixture
def browser(chromium: Browser, ui_api: LiveApi, request: pytest.FixtureRequest) -> Browser:
    chromium.start(ui_api.url, request.node.name.removeprefix("test_"))
    return chromium
