"""/api/v1/system over real HTTPS, on a temporary root prefix with the recording system: the
files land under the prefix and the commands are only recorded, never run on this machine."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle import __version__
from passerelle.engine.manage.api.resources.system import appliance_for
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.system import RecordingRunner

from support.api_client import ApiClient, LiveApi, start_api

SERIAL = "PSL-ABCDEFGH2345"
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
    paths.identity.write_text(
        json.dumps(
            {
                "serial": SERIAL,
                "serial_source": "random",
                "first_boot": "2025-03-01T12:00:00Z",
                "first_version": "0.1.0",
            }
        )
    )
    paths.hosts_file.parent.mkdir(parents=True)
    paths.hosts_file.write_text("127.0.0.1\tlocalhost\n")
    os.symlink("/usr/share/zoneinfo/Europe/Berlin", paths.localtime)
    paths.timesyncd_dropin.parent.mkdir(parents=True)
    paths.timesyncd_dropin.write_text("[Time]\nNTP=ntp1.example.net 192.168.1.3\n")
    paths.timesyncd_enabled_link.parent.mkdir(parents=True)
    os.symlink("/lib/systemd/system/systemd-timesyncd.service", paths.timesyncd_enabled_link)
    return paths


@pytest.fixture
def system_api(tmp_path: Path, root: Paths) -> Iterator[LiveApi]:
    live = start_api(tmp_path, system_root=root.root)
    yield live
    live.stop()


@pytest.fixture
def client(system_api: LiveApi) -> ApiClient:
    return system_api.client()


def recorded(root: Paths) -> list[list[str]]:
    return RecordingRunner(root).recorded()


def saved_network(root: Paths) -> dict[str, object]:
    return json.loads(root.network_state.read_text())


def test_get_shows_the_appliance_facts(client: ApiClient) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    response = client.get("/api/v1/system")
    assert response.status_code == 200, response.text
    facts = response.json()
    assert facts["hostname"] == "lb1"
    assert facts["network"] == {
        "address": "192.168.1.50/24",
        "prefix": 24,
        "gateway": "192.168.1.1",
        "dns": ["192.168.1.2"],
        "interface": "ens192",
        "mac": "00:50:56:aa:bb:cc",
        "source": "console",
    }
    assert facts["serial"] == SERIAL
    assert facts["version"] == __version__
    clock = facts["time"]
    assert clock["timezone"] == "Europe/Berlin"
    assert clock["ntp_servers"] == ["ntp1.example.net", "192.168.1.3"]
    assert clock["ntp_in_use"] is True
    utc = dt.datetime.fromisoformat(clock["utc"])
    assert utc.utcoffset() == dt.timedelta(0)
    assert before <= utc <= dt.datetime.now(dt.UTC)


def test_get_before_first_boot_shows_the_defaults(client: ApiClient, root: Paths) -> None:
    root.network_state.unlink()
    root.identity.unlink()
    root.timesyncd_enabled_link.unlink()
    root.hostname_file.write_text("image-name\n")
    facts = client.get("/api/v1/system").json()
    assert facts["hostname"] == "image-name"
    assert facts["network"]["address"] == "192.168.1.101/24"
    assert facts["network"]["source"] == "default"
    assert facts["serial"] is None
    assert facts["time"]["ntp_in_use"] is False


def test_put_network_writes_networkd_and_reloads(
    client: ApiClient, system_api: LiveApi, root: Paths
) -> None:
    wanted = {"address": "10.1.2.3/16", "gateway": "10.1.0.1", "dns": ["10.1.0.53", "9.9.9.9"]}
    response = client.put("/api/v1/system/network", json=wanted)
    assert response.status_code == 200, response.text
    network = response.json()["network"]
    assert network["address"] == "10.1.2.3/16"
    assert network["prefix"] == 16
    assert network["gateway"] == "10.1.0.1"
    assert network["dns"] == ["10.1.0.53", "9.9.9.9"]
    assert network["source"] == "api"

    unit = root.networkd_file.read_text()
    assert "Name=ens192" in unit
    assert "Address=10.1.2.3/16" in unit
    assert "Gateway=10.1.0.1" in unit
    assert "DNS=10.1.0.53\nDNS=9.9.9.9" in unit
    assert root.resolv_conf.read_text().endswith("nameserver 10.1.0.53\nnameserver 9.9.9.9\n")
    state = saved_network(root)
    assert state["address"] == "10.1.2.3/16" and state["hostname"] == "lb1"
    assert recorded(root)[:2] == [["networkctl", "reload"], ["networkctl", "reconfigure", "ens192"]]
    # the address moved: the engine restarts onto it once the answer is sent
    deadline = time.monotonic() + 3
    while ["systemctl", "restart", "passerelle.service"] not in recorded(root):
        assert time.monotonic() < deadline, recorded(root)
        time.sleep(0.02)

    entry = system_api.plane.audit.entries(limit=1)[0]
    assert entry.user == "admin" and entry.method == "PUT" and entry.status == 200
    assert entry.path == "/api/v1/system/network"
    assert "10.1.2.3/16" in entry.action and "gateway 10.1.0.1" in entry.action


def test_put_network_keeping_the_address_does_not_restart_the_engine(
    client: ApiClient, root: Paths
) -> None:
    wanted = {"address": "192.168.1.50/24", "gateway": None, "dns": []}
    response = client.put("/api/v1/system/network", json=wanted)
    assert response.status_code == 200, response.text
    assert response.json()["network"]["gateway"] is None
    assert "Gateway=" not in root.networkd_file.read_text()
    time.sleep(0.2)  # a restart would be recorded right after the answer
    assert recorded(root) == [["networkctl", "reload"], ["networkctl", "reconfigure", "ens192"]]


@pytest.mark.parametrize(
    ("wanted", "field", "reason"),
    [
        (
            {"address": "192.168.1.50/24", "gateway": "10.0.0.1"},
            "gateway",
            "10.0.0.1 is outside 192.168.1.0/24",
        ),
        ({"address": "192.168.1.50"}, "address", "no prefix length"),
        ({"address": "127.0.0.2/8"}, "address", "loopback"),
        ({"address": "10.0.0.0/24"}, "address", "network address"),
        ({"address": "10.0.0.5/33"}, "address", "between 1 and 32"),
        ({"address": "10.0.0.5/24", "dns": ["10.0.0.2", "bad"]}, "dns", "'bad'"),
        (
            {"address": "10.0.0.5/24", "dns": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9"]},
            "dns",
            "at most 3",
        ),
        ({"address": "10.0.0.5/24", "netmask": "255.0.0.0"}, "netmask", "xtra"),
    ],
)
def test_put_network_refuses_bad_input_and_applies_nothing(
    client: ApiClient, system_api: LiveApi, root: Paths, wanted: dict, field: str, reason: str
) -> None:
    response = client.put("/api/v1/system/network", json=wanted)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["field"] == field
    assert reason in error["error"]
    assert not root.networkd_file.exists()
    assert saved_network(root) == NETWORK
    assert recorded(root) == []
    assert system_api.plane.audit.entries(limit=1) == []


def test_put_hostname_writes_the_files_and_calls_hostnamectl(
    client: ApiClient, system_api: LiveApi, root: Paths
) -> None:
    response = client.put("/api/v1/system/hostname", json={"hostname": "LB2.Example.com."})
    assert response.status_code == 200, response.text
    assert response.json()["hostname"] == "lb2.example.com"
    assert root.hostname_file.read_text() == "lb2.example.com\n"
    assert "127.0.1.1\tlb2.example.com lb2" in root.hosts_file.read_text()
    assert saved_network(root)["hostname"] == "lb2.example.com"
    assert saved_network(root)["address"] == NETWORK["address"]
    assert recorded(root) == [["hostnamectl", "set-hostname", "lb2.example.com"]]
    assert system_api.plane.audit.entries(limit=1)[0].action == "set hostname lb2.example.com"


@pytest.mark.parametrize("name", ["", "under_score", "-lead", "a..b", "localhost", "1.2.3.4"])
def test_put_hostname_refuses_a_bad_name(client: ApiClient, root: Paths, name: str) -> None:
    response = client.put("/api/v1/system/hostname", json={"hostname": name})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "hostname"
    assert not root.hostname_file.exists()
    assert recorded(root) == []


def test_put_time_writes_timesyncd_and_sets_the_zone(
    client: ApiClient, system_api: LiveApi, root: Paths
) -> None:
    wanted = {"timezone": "America/New_York", "ntp_servers": ["ntp.example.org", "10.0.0.123"]}
    response = client.put("/api/v1/system/time", json=wanted)
    assert response.status_code == 200, response.text
    assert response.json()["time"]["ntp_servers"] == ["ntp.example.org", "10.0.0.123"]
    dropin = root.timesyncd_dropin.read_text()
    assert "[Time]\nNTP=ntp.example.org 10.0.0.123\n" in dropin
    assert recorded(root) == [
        ["timedatectl", "set-timezone", "America/New_York"],
        ["timedatectl", "set-ntp", "true"],
        ["systemctl", "try-restart", "systemd-timesyncd.service"],
    ]
    action = system_api.plane.audit.entries(limit=1)[0].action
    assert action == "set time zone America/New_York, NTP servers ntp.example.org 10.0.0.123"


def test_put_time_without_servers_turns_ntp_off(client: ApiClient, root: Paths) -> None:
    response = client.put("/api/v1/system/time", json={"timezone": "UTC", "ntp_servers": []})
    assert response.status_code == 200, response.text
    assert not root.timesyncd_dropin.exists()
    assert recorded(root) == [
        ["timedatectl", "set-timezone", "UTC"],
        ["timedatectl", "set-ntp", "false"],
    ]


@pytest.mark.parametrize(
    ("wanted", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": "UTC", "ntp_servers": ["bad_name"]}, "ntp_servers"),
        ({"timezone": "UTC", "ntp_servers": ["224.0.0.1"]}, "ntp_servers"),
    ],
)
def test_put_time_refuses_bad_input(
    client: ApiClient, root: Paths, wanted: dict, field: str
) -> None:
    response = client.put("/api/v1/system/time", json=wanted)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert "NTP=ntp1.example.net" in root.timesyncd_dropin.read_text()
    assert recorded(root) == []


def test_system_needs_authentication(system_api: LiveApi, root: Paths) -> None:
    anonymous = system_api.anonymous()
    assert anonymous.get("/api/v1/system").status_code == 401
    wrong = system_api.client(auth=("admin", "not-the-password"))
    body = {"address": "10.9.9.9/24"}
    assert wrong.put("/api/v1/system/network", json=body).status_code == 401
    assert anonymous.put("/api/v1/system/hostname", json={"hostname": "x1"}).status_code == 401
    assert anonymous.put("/api/v1/system/time", json={"timezone": "UTC"}).status_code == 401
    assert recorded(root) == []
    assert saved_network(root) == NETWORK


def test_without_a_system_root_the_resource_is_unavailable(tmp_path: Path) -> None:
    # an engine whose state is not /var/lib/passerelle does not own this machine's settings
    live = start_api(tmp_path)
    try:
        client = live.client()
        response = client.get("/api/v1/system")
        assert response.status_code == 404
        assert "does not run the appliance" in response.json()["error"]
        response = client.put("/api/v1/system/hostname", json={"hostname": "lb9"})
        assert response.status_code == 404
        assert response.json()["field"] == ""
    finally:
        live.stop()


def test_live_commands_are_refused_for_another_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root prefix /"):
        appliance_for(tmp_path, "live", tmp_path)
    assert appliance_for(None, None, tmp_path) is None


def test_openapi_documents_the_system_operations(client: ApiClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert set(paths["/api/v1/system"]) == {"get"}
    for name in ("network", "hostname", "time"):
        operation = paths[f"/api/v1/system/{name}"]["put"]
        assert "422" in operation["responses"] and "requestBody" in operation
