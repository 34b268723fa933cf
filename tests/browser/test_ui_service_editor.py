"""The service editor in a real browser: refusals shown next to the field the API names, and
the CSRF token required from pages and from the page's scripts."""

from __future__ import annotations

import pytest

from support.api_client import LiveApi
from support.browser import PASSWORD, SERVICE, Browser, log_in

pytestmark = pytest.mark.browser


def test_invalid_value_is_shown_next_to_its_field(browser: Browser, ui_api: LiveApi) -> None:
    api = ui_api.client()
    assert api.post("/api/v1/virtual-services", json=SERVICE).status_code == 201
    log_in(browser, ui_api)
    version = ui_api.version()

    browser.open("/services/web")
    browser.fill("#health_check-timeout", "30")  # longer than the 10 s interval
    browser.fill("#ports", "8443, 70000")
    browser.submit("#save-service")

    errors = {e.get_attribute("data-error-for"): e.text for e in browser.find_all(".error")}
    assert "ports" in errors and "65535" in errors["ports"]
    # the typed values stay in the form
    assert browser.find("#ports").get_attribute("value") == "8443, 70000"
    assert browser.find("[data-field=ports]").get_attribute("class") == "field invalid"
    browser.shot("invalid-port")
    assert ui_api.version() == version  # nothing stored

    browser.fill("#ports", "8443")
    browser.submit("#save-service")
    error = browser.find("[data-error-for='health_check.timeout']")
    assert error.text == "must not exceed interval"
    assert error.find_element("xpath", "..").get_attribute("data-field") == "health_check.timeout"
    browser.shot("invalid-timeout")
    assert ui_api.version() == version

    browser.fill("#health_check-timeout", "3")
    browser.fill("#idle_timeout", "1800")
    browser.submit("#save-service")
    assert browser.find_all(".error") == []
    api = ui_api.client(auth=("admin", PASSWORD))
    stored = api.get("/api/v1/virtual-services/web").json()
    assert stored["health_check"]["timeout"] == 3 and stored["idle_timeout"] == 1800


def test_post_without_csrf_token_is_refused(browser: Browser, ui_api: LiveApi) -> None:
    api = ui_api.client()
    assert api.post("/api/v1/virtual-services", json=SERVICE).status_code == 201
    log_in(browser, ui_api)
    version = ui_api.version()
    api = ui_api.client(auth=("admin", PASSWORD))
    browser.open("/services/web")

    # the page's script calling the API: refused without the header, accepted with it
    server = {"address": "127.0.0.83", "port": 8080}
    path = "/api/v1/virtual-services/web/real-servers"
    refused = browser.fetch("POST", path, server, csrf=False)
    assert refused["status"] == 403 and "CSRF" in refused["text"]
    assert ui_api.version() == version
    assert browser.fetch("POST", path, server)["status"] == 201
    version = ui_api.version()

    # a page's form with its token removed
    row = "tr[data-server='127.0.0.82:8080']"
    browser.driver.execute_script(
        'for (const i of document.querySelectorAll("input[name=csrf_token]")) i.remove();'
    )
    browser.submit(f"{row} button[data-action=disable]")
    assert "missing or wrong CSRF token" in browser.text("main")
    browser.shot("csrf-refused")
    assert ui_api.version() == version
    state = api.get("/api/v1/virtual-services/web/real-servers/127.0.0.82:8080").json()["state"]
    assert state == "enabled"

    # the same button with the page's token works
    browser.open("/services/web")
    browser.submit(f"{row} button[data-action=drain]")
    assert browser.text(f"{row} [data-state]") == "draining"
    state = api.get("/api/v1/virtual-services/web/real-servers/127.0.0.82:8080").json()["state"]
    assert state == "draining"


def test_pages_need_a_session(browser: Browser, ui_api: LiveApi) -> None:
    browser.open("/services/web")
    assert browser.path == "/login?next=/services/web"
    anonymous = ui_api.anonymous()
    answer = anonymous.post(
        "/services",
        data=b"name=x&address=127.0.0.1&ports=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 401
    assert ui_api.version() == 0
