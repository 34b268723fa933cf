"""The management API inside the real engine: a real server added through it takes traffic."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.engine.tls.certificates import make_self_signed

from support.api_client import ManagedEngine
from support.engine import free_port


@pytest.fixture
def managed(tmp_path: Path) -> Iterator[ManagedEngine]:
    engine = ManagedEngine(tmp_path)
    yield engine
    engine.stop()


def answered_by(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "api.test"})
        return json.loads(conn.getresponse().read())["server"]
    finally:
        conn.close()


def test_real_server_added_through_the_api_receives_traffic(managed, servers):
    first, second = servers.http("first"), servers.http("second")
    port = free_port()
    managed.start(
        {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "127.0.0.1",
                    "ports": [port],
                    "health_check": {"type": "tcp", "interval": 0.2, "timeout": 0.15},
                    "real_servers": [{"address": first.address, "port": first.port}],
                }
            ]
        }
    )
    assert {answered_by(port) for _ in range(4)} == {"first"}

    api = managed.client()
    added = api.post(
        "/api/v1/virtual-services/web/real-servers",
        json={"address": second.address, "port": second.port},
    )
    assert added.status_code == 201, added.text
    managed.wait_version(int(added.headers["ETag"].strip('"')))
    managed.wait_health("web", f"{second.address}:{second.port}", "up")

    deadline = time.monotonic() + 10
    seen: set[str] = set()
    while time.monotonic() < deadline and seen != {"first", "second"}:
        seen.add(answered_by(port))
    assert seen == {"first", "second"}

    drained = api.post(f"/api/v1/virtual-services/web/real-servers/127.0.0.1:{first.port}/disable")
    assert drained.status_code == 200
    managed.wait_version(int(drained.headers["ETag"].strip('"')))
    assert {answered_by(port) for _ in range(6)} == {"second"}

    stats = api.get("/api/v1/statistics").json()["virtual_services"]
    rows = {row["server"]: row for row in stats[0]["real_servers"]}
    assert rows[f"127.0.0.1:{second.port}"]["health"] == "up"
    assert "passerelle" in api.get("/metrics").text
    history = api.get("/api/v1/config/history").json()
    assert history[0]["author"] == "admin"


def maps_cryptography(pid: int) -> bool:
    """Whether the process has cryptography's compiled library mapped (it never unloads)."""
    return "cryptography/hazmat/bindings" in Path(f"/proc/{pid}/maps").read_text()


def test_cryptography_stays_out_of_the_engine_until_a_certificate_comes_in(managed):
    managed.start({"virtual_services": []})
    assert managed.process is not None
    api = managed.client()
    # First start: the self-signed management certificate was made, and the API serves it.
    assert (managed.workdir / "management.key").stat().st_mode & 0o077 == 0
    assert api.get("/api/v1/virtual-services").status_code == 200
    assert not maps_cryptography(managed.process.pid)

    cert_pem, key_pem = make_self_signed("edge.contoso.com", ["edge.contoso.com"])
    added = api.post(
        "/api/v1/certificates", json={"name": "edge", "cert_pem": cert_pem, "key_pem": key_pem}
    )
    assert added.status_code == 201, added.text
    assert maps_cryptography(managed.process.pid)
