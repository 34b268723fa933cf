"""/api/v1/licence over the live API: status and activation."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passerelle.engine.manage.licence.clock import NOW_ENV
from passerelle.engine.manage.licence.signing import PUBLIC_KEY_ENV, issue

from support.api_client import LiveApi, start_api

SERIAL = "PSL-ABCDEFGHJKMN"
FIRST_BOOT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def vendor(monkeypatch: pytest.MonkeyPatch) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    monkeypatch.setenv(PUBLIC_KEY_ENV, pem.decode())
    monkeypatch.setenv(NOW_ENV, "2026-03-11T12:00:00Z")
    return key


@pytest.fixture
def api(tmp_path: Path, vendor: Ed25519PrivateKey) -> Iterator[LiveApi]:
    identity = {"serial": SERIAL, "first_boot": "2026-03-01T12:00:00Z"}
    (tmp_path / "identity.json").write_text(json.dumps(identity))
    live = start_api(tmp_path)
    yield live
    live.stop()


def test_status_then_activation(api: LiveApi, vendor: Ed25519PrivateKey):
    admin = api.client()
    demo = admin.get("/api/v1/licence")
    assert demo.status_code == 200
    body = demo.json()
    assert (body["kind"], body["serial"], body["days_left"]) == ("demo", SERIAL, 20)
    assert body["accepts_new_connections"] is True
    assert "stop accepting new connections" in body["expiry_effect"]
    text = issue(vendor, SERIAL, FIRST_BOOT + dt.timedelta(days=400), issued=FIRST_BOOT)
    done = admin.post(
        "/api/v1/licence/activate", data=text.encode(), headers={"Content-Type": "application/json"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["kind"] == "activated"
    assert admin.get("/api/v1/licence").json()["days_left"] == 390
    audit = admin.get("/api/v1/audit").json()
    assert any("activate licence" in record["action"] for record in audit)


def test_refusals_name_the_field(api: LiveApi, vendor: Ed25519PrivateKey):
    admin = api.client()
    good = json.loads(issue(vendor, SERIAL, FIRST_BOOT + dt.timedelta(days=400), issued=FIRST_BOOT))
    forged = {**good, "payload": {**good["payload"], "expires": "2099-01-01T00:00:00Z"}}
    answer = admin.post("/api/v1/licence/activate", json=forged)
    assert answer.status_code == 422
    assert answer.json()["field"] == "signature"
    other = json.loads(issue(vendor, "PSL-ZZZZZZZZZZZZ", FIRST_BOOT + dt.timedelta(days=9)))
    answer = admin.post("/api/v1/licence/activate", json=other)
    assert answer.status_code == 422 and answer.json()["field"] == "payload.serial"
    shapeless = admin.post("/api/v1/licence/activate", json={"signature": "x"})
    assert shapeless.status_code == 422 and shapeless.json()["field"] == "payload"
    assert admin.get("/api/v1/licence").json()["kind"] == "demo"
    assert api.anonymous().get("/api/v1/licence").status_code == 401
