"""Dashboard, certificates, system pages and the login's rate limit in a real browser."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.engine.tls.certificates import make_self_signed

from support.api_client import LiveApi
from support.browser import PASSWORD, SERVICE, Browser, log_in

pytestmark = pytest.mark.browser


class Counters:
    """Statistics rows shaped like the engine's, with a request counter the test advances."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self) -> list[dict[str, Any]]:
        servers = [
            {"server": "127.0.0.82:8080", "state": "enabled", "health": "up", "active": 2},
            {"server": "127.0.0.83:8080", "state": "enabled", "health": "down", "active": 0},
        ]
        return [
            {
                "name": "web",
                "enabled": True,
                "active": 7,
                "total": self.requests,
                "requests": self.requests,
                "real_servers": servers,
                "subvs": [],
            }
        ]


def test_dashboard_figures_and_refresh(browser: Browser, ui_api: LiveApi) -> None:
    api = ui_api.client()
    service = {
        **SERVICE,
        "real_servers": [{"address": "127.0.0.83", "port": 8080}, *SERVICE["real_servers"]],
    }
    assert api.post("/api/v1/virtual-services", json=service).status_code == 201
    counters = Counters()
    ui_api.plane.app.extensions["passerelle"].stats = counters
    (ui_api.directory / "ha-state").write_text("active\n")
    log_in(browser, ui_api)

    assert browser.text("#connections") == "7"
    assert browser.text("#health") == "1 up · 1 down"
    assert browser.text("#ha-state") == "active"
    assert browser.text("#rate") == "—"  # one sample is not a rate
    counters.requests = 5000
    # the page's script fetches the figures again; the rate comes from two samples
    # read in one script call: the refresh swaps the elements under a held reference
    rate = "return document.getElementById('rate').textContent.trim()"
    browser.wait(lambda driver: driver.execute_script(rate) not in ("—", "0.0"), timeout=8)
    assert float(browser.driver.execute_script(rate)) > 0
    browser.shot("dashboard")
    browser.open("/services")
    assert "1 up, 1 down" in browser.text("tr[data-service=web]")


def test_certificates_self_signed_csr_and_expiry(browser: Browser, ui_api: LiveApi) -> None:
    cert_pem, key_pem = make_self_signed("old.example.com", ["old.example.com"], days=10)
    old = {"name": "old", "cert_pem": cert_pem, "key_pem": key_pem}
    assert ui_api.client().post("/api/v1/certificates", json=old).status_code == 201
    log_in(browser, ui_api)
    browser.open("/certificates")
    assert "days left" in browser.text("tr[data-certificate=old] .warning")

    browser.find("#self-signed summary").click()
    browser.fill("#ss-name", "lab")
    browser.fill("#ss-cn", "lab.example.com")
    browser.submit("#self-signed button[type=submit]")
    assert browser.find_all("tr[data-certificate=lab] .warning") == []

    browser.find("#create-csr summary").click()
    browser.fill("#csr-name", "edge-2025")
    browser.fill("#csr-cn", "webext.contoso.com")
    browser.fill("#csr-names", "meet.contoso.com")
    browser.submit("#create-csr button[type=submit]")
    assert browser.text("#csr-pem").startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert "edge-2025" in browser.text("#pending")
    browser.shot("certificates")
    assert (ui_api.directory / "csr" / "edge-2025.key").stat().st_mode & 0o077 == 0

    api = ui_api.client(auth=("admin", PASSWORD))
    names = [c["name"] for c in api.get("/api/v1/certificates").json()]
    assert names == ["old", "lab"]


def test_system_tokens_history_and_rollback(browser: Browser, ui_api: LiveApi) -> None:
    admin = ui_api.client()
    assert admin.post("/api/v1/virtual-services", json=SERVICE).status_code == 201
    assert admin.post("/api/v1/virtual-services/web/disable").status_code == 200
    log_in(browser, ui_api)
    browser.open("/system")
    browser.fill("#token-name", "deploy")
    browser.submit("#tokens button[type=submit]")
    secret = browser.text("#new-token")
    assert ui_api.client(token=secret).get("/api/v1/session").json()["user"] == "admin"
    browser.shot("system")

    browser.submit("#history tr:last-child button", confirm=True)  # roll back to version 1
    assert "rolled back to version 1" in browser.text(".notice")
    api = ui_api.client(auth=("admin", PASSWORD))
    assert api.get("/api/v1/virtual-services/web").json()["enabled"] is True
    browser.find("#history tr:nth-child(1) a").click()
    browser.wait_for("#diff")
    assert "-  enabled: false" in browser.text("#diff")

    browser.open("/system")
    browser.submit("#tokens tbody button", confirm=True)
    assert ui_api.client(token=secret).get("/api/v1/session").status_code == 401
    browser.open("/system/audit")
    assert "revoke API token" in browser.text("#audit")


def test_login_shows_the_rate_limit(browser: Browser) -> None:
    browser.open("/login")
    for _ in range(5):
        browser.fill("#password", "wrong-password")
        browser.submit("#login")
        assert "wrong user name or password" in browser.text("#login-error")
    browser.fill("#password", "wrong-password")
    browser.submit("#login")
    assert "too many failed logins" in browser.text("#login-error")
    browser.shot("rate-limited")
