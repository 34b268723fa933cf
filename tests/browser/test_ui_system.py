"""The System page's appliance settings in a real browser, over the API's system resource on a
temporary root prefix with the recording system: files land under the prefix, the commands are
only recorded, never run on this machine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.firstboot.paths import Paths
from passerelle.firstboot.system import RecordingRunner

from support.api_client import LiveApi, start_api
from support.browser import Browser, log_in

pytestmark = pytest.mark.browser

NETWORK = {
    "address": "192.168.1.50/24",
    "gateway": "192.168.1.1",
    "dns": ["192.168.1.2"],
    "hostname": "lb1",
    "interface": "ens192",
    "mac": "00:50:56:aa:bb:cc",
    "source": "console",
    "notes": [],
}


@pytest.fixture
def root(tmp_path: Path) -> Paths:
    paths = Paths.at(tmp_path / "root")
    paths.state_dir.mkdir(parents=True)
    paths.network_state.write_text(json.dumps(NETWORK))
    paths.hosts_file.parent.mkdir(parents=True)
    paths.hosts_file.write_text("127.0.0.1\tlocalhost\n")
    return paths


@pytest.fixture
def ui_api(tmp_path: Path, root: Paths) -> Iterator[LiveApi]:
    # the browser fixture drives this plane: the one whose system resource owns ``root``
    live = start_api(tmp_path, system_root=root.root)
    live.plane.app.config["PASSERELLE_HA_STATE"] = str(tmp_path / "ha-state")
    yield live
    live.stop()


def recorded(root: Paths) -> list[list[str]]:
    return RecordingRunner(root).recorded()


def test_hostname_and_network_through_the_system_resource(
    browser: Browser, ui_api: LiveApi, root: Paths
) -> None:
    log_in(browser, ui_api)
    browser.open("/system")
    assert browser.find("#network-address").get_attribute("value") == "192.168.1.50/24"
    assert browser.find("#hostname-hostname").get_attribute("value") == "lb1"

    browser.fill("#hostname-hostname", "LB2.Example.com")
    browser.submit("#hostname-form button[type=submit]")
    assert "host name saved" in browser.text(".notice")
    assert browser.find("#hostname-hostname").get_attribute("value") == "lb2.example.com"
    assert root.hostname_file.read_text() == "lb2.example.com\n"
    assert recorded(root) == [["hostnamectl", "set-hostname", "lb2.example.com"]]

    # a gateway outside the address's network: refused next to the gateway, nothing applied
    browser.fill("#network-address", "10.1.2.3/16")
    browser.fill("#network-gateway", "192.168.1.1")
    browser.submit("#network-form button[type=submit]")
    error = browser.text("#network-form [data-error-for=gateway]")
    assert "192.168.1.1 is outside 10.1.0.0/16" in error
    assert browser.find_all("#network-form [data-error-for=address]") == []
    # what was typed stays in the inputs
    assert browser.find("#network-address").get_attribute("value") == "10.1.2.3/16"
    browser.shot("refused-gateway")
    assert not root.networkd_file.exists()
    assert len(recorded(root)) == 1

    browser.fill("#network-gateway", "10.1.0.1")
    browser.fill("#network-dns", "10.1.0.53, 9.9.9.9")
    browser.submit("#network-form button[type=submit]")
    assert "network settings saved" in browser.text(".notice")
    assert browser.find_all("#network-form .error") == []
    browser.shot("network-saved")

    unit = root.networkd_file.read_text()
    assert "Name=ens192" in unit
    assert "Address=10.1.2.3/16" in unit
    assert "Gateway=10.1.0.1" in unit
    assert "DNS=10.1.0.53\nDNS=9.9.9.9" in unit
    state = json.loads(root.network_state.read_text())
    assert (state["address"], state["hostname"], state["source"]) == (
        "10.1.2.3/16",
        "lb2.example.com",
        "api",
    )
    commands = recorded(root)
    assert commands[1:3] == [["networkctl", "reload"], ["networkctl", "reconfigure", "ens192"]]
    # the address moved: the engine restarts onto it once the answer is sent
    browser.wait(lambda _: ["systemctl", "restart", "passerelle.service"] in recorded(root))

    actions = [entry.action for entry in ui_api.plane.audit.entries(limit=5)]
    assert "set hostname lb2.example.com" in actions
    assert any("10.1.2.3/16" in action and "gateway 10.1.0.1" in action for action in actions)


def test_settings_not_available_off_the_appliance(tmp_path: Path, chromium: Browser) -> None:
    live = start_api(tmp_path)  # no system root, state not in /var/lib/passerelle
    try:
        chromium.start(live.url, "settings_not_available")
        log_in(chromium, live)
        chromium.open("/system")
        assert chromium.text("#appliance-unavailable") == (
            "not available: this engine does not run the appliance"
        )
        assert chromium.find_all("#network-form") == []
        chromium.shot("system")
    finally:
        live.stop()
