"""The whole first visit in a real browser: log in with the first password, accept the EULA,
choose a password, start the demo, install the edge certificate from a PFX, apply the Skype for
Business reverse-proxy template, and disable a real server from the service editor."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from passerelle.engine.tls.certificates import make_self_signed

from support.api_client import ADMIN_PASSWORD, LiveApi
from support.browser import Browser

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a-password-of-my-own"
NAMES = ["webext.contoso.com", "meet.contoso.com", "dialin.contoso.com", "owa.contoso.com"]


def _pfx(folder: Path, password: str) -> Path:
    cert_pem, key_pem = make_self_signed(NAMES[0], NAMES)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    data = pkcs12.serialize_key_and_certificates(
        b"edge",
        key,  # type: ignore[arg-type]
        cert,
        None,
        serialization.BestAvailableEncryption(password.encode()),
    )
    path = folder / "edge.pfx"
    path.write_bytes(data)
    return path


def test_first_visit_to_template_to_disabled_server(
    browser: Browser, ui_api: LiveApi, tmp_path: Path
) -> None:
    browser.open("/")
    assert browser.path.startswith("/login")
    browser.shot("01-login")

    browser.fill("#password", "not-the-password")
    browser.submit("#login")
    assert "wrong user name or password" in browser.text("#login-error")

    browser.fill("#password", ADMIN_PASSWORD)
    browser.submit("#login")
    assert browser.path == "/welcome/eula"
    browser.shot("02-eula")
    browser.submit("#eula-continue")  # not ticked: refused
    assert "accept" in browser.text(".error")
    browser.find("#accept").click()
    browser.submit("#eula-continue")

    assert browser.path == "/welcome/password"
    browser.open("/dashboard")  # no way round the password step
    assert browser.path == "/welcome/password"
    browser.fill("#current_password", ADMIN_PASSWORD)
    browser.fill("#password", NEW_PASSWORD)
    browser.fill("#confirm", NEW_PASSWORD)
    browser.shot("03-password")
    browser.submit("#password-save")

    assert browser.path == "/welcome/licence"
    browser.shot("04-licence")
    browser.submit("#start-demo")
    assert browser.path == "/dashboard"
    assert browser.text("#licence-days") == "30 days"
    assert browser.text("#ha-state") == "standalone"
    browser.shot("05-dashboard-empty")
    # the initial password no longer works anywhere
    assert ui_api.client().get("/api/v1/session").status_code == 401
    api = ui_api.client(auth=("admin", NEW_PASSWORD))

    browser.open("/certificates")
    browser.find("#upload-pfx summary").click()
    browser.fill("#pfx-name", "contoso-edge")
    browser.find("#pfx-file").send_keys(str(_pfx(tmp_path, "pfx-secret")))
    browser.fill("#pfx-password", "pfx-secret")
    browser.submit("#upload-pfx button[type=submit]")
    assert browser.find("tr[data-certificate=contoso-edge]").is_displayed()
    browser.shot("06-certificates")
    stored = api.get("/api/v1/certificates/contoso-edge").json()
    assert stored["has_key"] and stored["subject_cn"] == NAMES[0]

    browser.open("/templates")
    browser.shot("07-templates")
    browser.find("[data-template=sfb-reverse-proxy] a.button").click()
    browser.wait_for("#template-form")
    params = {
        "vip": "127.0.0.61",
        "webext_name": NAMES[0],
        "meet_name": NAMES[1],
        "dialin_name": NAMES[2],
        "lyncdiscover_name": "lyncdiscover.contoso.com",
        "pool_vip": "127.0.0.62",
        "office_online_names": NAMES[3],
        "office_online_servers": "127.0.0.71, 127.0.0.72",
    }
    for name, value in params.items():
        browser.fill(f"#param-{name}", value)
    browser.submit("#preview-button")
    assert browser.text("#preview-added") == "sfb-reverse-proxy"
    browser.shot("08-template-preview")
    browser.submit("#apply-button")

    assert browser.path.startswith("/services")
    row = browser.find("tr[data-service=sfb-reverse-proxy]")
    assert "127.0.0.61" in row.text and "enabled" in row.text
    browser.shot("09-services")

    row.find_element("css selector", "a").click()
    browser.wait_for("#service-form")
    browser.find("#subvs-office-online summary").click()
    browser.shot("10-service-editor")
    server = "tr[data-server='127.0.0.71:443']"
    assert browser.text(f"#servers-office-online {server} [data-state]") == "enabled"
    browser.submit(f"#servers-office-online {server} button[data-action=disable]")

    assert browser.text(f"#servers-office-online {server} [data-state]") == "disabled"
    assert (
        browser.text("#servers-office-online tr[data-server='127.0.0.72:443'] [data-state]")
        == "enabled"
    )
    browser.shot("11-server-disabled")
    answer = api.get(
        "/api/v1/virtual-services/sfb-reverse-proxy/subvs/office-online/real-servers/127.0.0.71:443"
    )
    assert answer.json()["state"] == "disabled"
    # the change went through the change path: one version, in the history and audit log
    comments = [v["comment"] for v in api.get("/api/v1/config/history").json()]
    assert comments[0].startswith("disable real server 127.0.0.71:443")
    assert any(c.startswith("apply template sfb-reverse-proxy") for c in comments)
