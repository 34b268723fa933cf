"""The peer-only replication calls of /api/v1/ha/sync: signed both ways, refusals included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from passerelle.engine.balance.persistence import PersistenceTable
from passerelle.engine.ha import signing
from passerelle.engine.ha.node import EXTENSION, HANode

from support.api_client import ApiClient, LiveApi, Response, start_api

SECRET = "the-pair-secret-0123456789"
HA = {
    "node": "b",
    "local_address": "127.0.0.1",
    "peer_address": "127.0.0.2",
    "interface": "lo",
    "auth_secret": SECRET,
}
SERVICE = {
    "name": "web",
    "address": "127.0.0.1",
    "ports": [8080],
    "protocol": "tcp",
    "real_servers": [{"address": "127.0.0.3", "port": 80}],
}


@pytest.fixture
def standby(tmp_path: Path) -> Iterator[tuple[LiveApi, HANode]]:
    """An API with HA settings and a node that is not started (no keepalived, no greenlets)."""
    live = start_api(tmp_path)
    assert live.client().put("/api/v1/ha/settings", json=HA).status_code == 200
    node = HANode(
        live.store,
        SimpleNamespace(persistence=PersistenceTable()),  # type: ignore[arg-type]
        state_file=tmp_path / "ha-state",
        run_dir=tmp_path,
        api_port=None,
    )
    live.plane.app.extensions[EXTENSION] = node
    yield live, node
    live.stop()


def peer_call(
    client: ApiClient, method: str, path: str, payload: Any = None, secret: str = SECRET
) -> tuple[Response, Any]:
    """A call signed as node a would sign it; the answer's signature is checked."""
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = signing.request_headers(secret, "a", method, path, body, time.time())
    headers["Content-Type"] = "application/json"
    answer = client.request(method, path, data=body, headers=headers)
    signing.verify_response(
        SECRET,
        headers[signing.NONCE],
        answer.status_code,
        answer.content,
        answer.headers[signing.SIGNATURE],
    )
    return answer, answer.json()


def test_an_unsigned_call_is_challenged(standby):
    live, _ = standby
    answer = live.anonymous().get("/api/v1/ha/sync")
    assert answer.status_code == 401
    assert "Bearer" in answer.headers["WWW-Authenticate"]
    assert signing.SIGNATURE not in answer.headers


def test_a_wrongly_signed_call_is_refused(standby):
    live, _ = standby
    body = b""
    headers = signing.request_headers("another-secret-0123456789", "a", "GET", "/x", body, 0.0)
    answer = live.anonymous().request("GET", "/api/v1/ha/sync", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["field"] == signing.SIGNATURE


def test_the_held_version_is_answered_signed(standby):
    live, _ = standby
    answer, held = peer_call(live.anonymous(), "GET", "/api/v1/ha/sync")
    assert answer.status_code == 200
    assert held["role"] == "standalone" and held["synced_version"] == 0


def test_the_active_configuration_is_stored_and_the_own_ha_section_kept(standby):
    live, _ = standby
    config = {"virtual_services": [SERVICE]}
    payload = {"config": config, "version": 7, "source_node": "a"}
    answer, held = peer_call(live.anonymous(), "PUT", "/api/v1/ha/sync/config", payload)
    assert answer.status_code == 200, held
    assert held["synced_version"] == 7 and held["source_node"] == "a"
    _, stored = live.store.current()
    assert [vs.name for vs in stored.virtual_services] == ["web"]
    assert stored.ha is not None and stored.ha.node == "b"
    audit = live.client().get("/api/v1/audit?limit=1").json()
    assert audit[0]["action"] == "replicated configuration v7 from node a"


@pytest.mark.parametrize(
    "payload",
    [
        {"config": [], "version": 1, "source_node": "a"},
        {"config": {}, "version": "1", "source_node": "a"},
        {"config": {}, "version": 1, "source_node": "c"},
    ],
)
def test_a_malformed_configuration_call_is_refused_signed(standby, payload):
    live, _ = standby
    answer, refusal = peer_call(live.anonymous(), "PUT", "/api/v1/ha/sync/config", payload)
    assert answer.status_code == 422
    assert refusal == {"error": "expected config, version and source_node", "field": ""}


def test_an_invalid_configuration_is_refused_naming_the_field(standby):
    live, _ = standby
    bad = {**SERVICE, "ports": [0]}
    payload = {"config": {"virtual_services": [bad]}, "version": 2, "source_node": "a"}
    answer, refusal = peer_call(live.anonymous(), "PUT", "/api/v1/ha/sync/config", payload)
    assert answer.status_code == 422
    assert refusal["field"].startswith("virtual_services[0].ports")
    _, stored = live.store.current()
    assert stored.virtual_services == []


def test_an_active_node_refuses_the_peer_data(standby):
    live, node = standby
    node.role = "active"
    payload = {"config": {}, "version": 3, "source_node": "a"}
    answer, refusal = peer_call(live.anonymous(), "PUT", "/api/v1/ha/sync/config", payload)
    assert answer.status_code == 409 and "active" in refusal["error"]
    payload = {"entries": []}
    answer, refusal = peer_call(live.anonymous(), "PUT", "/api/v1/ha/sync/persistence", payload)
    assert answer.status_code == 409 and refusal["field"] == ""


def test_persistence_entries_are_loaded(standby):
    live, node = standby
    entry = {"pool": "web", "key": "10.0.0.1", "server": "127.0.0.3:80", "remaining": 30.0}
    answer, held = peer_call(
        live.anonymous(), "PUT", "/api/v1/ha/sync/persistence", {"entries": [entry]}
    )
    assert answer.status_code == 200 and held["role"] == "standalone"
    assert [e["server"] for e in node.supervisor.persistence.dump(time.monotonic())] == [
        "127.0.0.3:80"
    ]


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ({"pool": "web"}, "expected entries: a list of objects"),
        ([1], "expected entries: a list of objects"),
        ([{"pool": "web"}], "bad persistence entry: 'remaining'"),
        ([{"pool": "p", "key": "k", "server": "s", "remaining": "x"}], "bad persistence entry"),
    ],
)
def test_bad_persistence_entries_are_refused_signed(standby, entries, error):
    live, _ = standby
    answer, refusal = peer_call(
        live.anonymous(), "PUT", "/api/v1/ha/sync/persistence", {"entries": entries}
    )
    assert answer.status_code == 422
    assert refusal["error"].startswith(error) and refusal["field"] == "entries"


def test_a_node_outside_a_pair_refuses(standby):
    live, _ = standby
    assert live.client().delete("/api/v1/ha/settings").status_code == 204
    answer = live.anonymous().request(
        "GET",
        "/api/v1/ha/sync",
        headers=signing.request_headers(SECRET, "a", "GET", "/api/v1/ha/sync", b"", time.time()),
    )
    assert answer.status_code == 409
