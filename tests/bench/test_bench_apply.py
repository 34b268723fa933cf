"""Both ways the apply scenario changes Passerelle reach traffic: `passerelle config apply` and one
PUT to the REST API. A real engine, real sample servers, real requests through the virtual
service; no speed is asserted."""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.api_client import ManagedEngine
from support.engine import free_port

# The suite is a plain folder at the repository root, run as `python -m bench` from there.
# The root goes on the path only for this import: left there, its `firstboot` package would
# shadow the tests' own `firstboot` folder for every module collected afterwards.
_ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, _ROOT)
try:
    from bench.placement import unpinned
    from bench.proxies.passerelle import Passerelle
    from bench.services import Server, Service
finally:
    sys.path.remove(_ROOT)

WAIT = 10.0  # for a change to reach the workers on a loaded machine


def answered_by(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": "apply.test"})
        return json.loads(connection.getresponse().read())["server"]
    finally:
        connection.close()


def wait_answered_by(port: int, name: str) -> None:
    deadline = time.monotonic() + WAIT
    last = ""
    while time.monotonic() < deadline:
        last = answered_by(port)
        if last == name:
            return
        time.sleep(0.01)
    raise AssertionError(f"still answered by {last!r}, not {name!r}")


@pytest.fixture
def bench_passerelle(tmp_path: Path) -> Iterator[Passerelle]:
    proxy = Passerelle(tmp_path, unpinned(workers=1))
    yield proxy
    proxy.stop()


def test_bench_changes_passerelle_by_file_and_by_api(bench_passerelle, servers) -> None:
    first, second = servers.http("first"), servers.http("second")
    one, two = Server(first.address, first.port), Server(second.address, second.port)
    proxy = bench_passerelle
    proxy.start([Service("apply", "http", (one,))])
    port = proxy.port("apply")
    assert proxy.api is not None, "the apply service needs the management API"
    assert answered_by(port) == "first"

    current = proxy.services[0]
    proxy.reconfigure_api(current.with_servers((two,)))
    wait_answered_by(port, "second")
    assert {answered_by(port) for _ in range(4)} == {"second"}

    proxy.reconfigure(current.with_servers((one,)))
    wait_answered_by(port, "first")
    assert {answered_by(port) for _ in range(4)} == {"first"}


def test_bench_engine_without_the_apply_service_has_no_management_api(
    bench_passerelle, servers
) -> None:
    first = servers.http("first")
    proxy = bench_passerelle
    proxy.start([Service("l7", "http", (Server(first.address, first.port),))])
    assert proxy.api is None
    assert not (proxy.workdir / "management.crt").exists()
    with pytest.raises(RuntimeError, match="without its management API"):
        proxy.reconfigure_api(proxy.services[0])


@pytest.fixture
def managed(tmp_path: Path) -> Iterator[ManagedEngine]:
    engine = ManagedEngine(tmp_path)
    yield engine
    engine.stop()


def web(port: int, server_port: int) -> dict:
    return {
        "name": "web",
        "address": "127.0.0.1",
        "ports": [port],
        "health_check": {"type": "none"},
        "real_servers": [{"address": "127.0.0.1", "port": server_port}],
    }


def test_put_of_a_virtual_service_moves_traffic_and_a_bad_one_changes_nothing(
    managed, servers
) -> None:
    first, second = servers.http("first"), servers.http("second")
    port = free_port()
    managed.start({"virtual_services": [web(port, first.port)]})
    api = managed.client()
    assert answered_by(port) == "first"

    moved = api.put("/api/v1/virtual-services/web", json=web(port, second.port))
    assert moved.status_code == 200, moved.text
    managed.wait_version(int(moved.headers["ETag"].strip('"')))
    assert {answered_by(port) for _ in range(4)} == {"second"}

    # Validated whole: one bad field refuses the whole change and names that field.
    bad = web(port, first.port)
    bad["real_servers"].append({"address": "127.0.0.1", "port": 70000})
    refused = api.put("/api/v1/virtual-services/web", json=bad)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "real_servers[1].port", refused.text
    assert managed.store.latest_number() == int(moved.headers["ETag"].strip('"'))
    assert {answered_by(port) for _ in range(4)} == {"second"}
