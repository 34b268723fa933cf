"""The licence: demo days with a moved clock, expiry, activation with a throwaway vendor key,
and refusals (tampered, expired, wrong serial, dated in the future)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passerelle.engine.manage.licence import (
    DEMO_DAYS,
    FEATURES,
    LICENCE_FILE,
    LicenceError,
    activate,
    licence_status,
)
from passerelle.engine.manage.licence.clock import NOW_ENV
from passerelle.engine.manage.licence.signing import PUBLIC_KEY_ENV, issue, public_key
from passerelle.engine.manage.store import ConfigStore
from passerelle.firstboot.licence import demo_licence

SERIAL = "PSL-ABCDEFGHJKMN"
FIRST_BOOT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture
def appliance(tmp_path: Path) -> Path:
    identity = {"serial": SERIAL, "serial_source": "random", "first_boot": "2026-03-01T12:00:00Z"}
    (tmp_path / "identity.json").write_text(json.dumps(identity))
    return tmp_path


@pytest.fixture
def vendor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NOW_ENV, raising=False)
    monkeypatch.delenv(PUBLIC_KEY_ENV, raising=False)


def licence_text(key: Ed25519PrivateKey, serial: str = SERIAL, days: int = 365, **kw) -> str:
    issued = kw.pop("issued", FIRST_BOOT + 2 * DAY)
    return issue(key, serial, issued + days * DAY, issued=issued, customer="Contoso", **kw)


@pytest.mark.parametrize(("elapsed", "left"), [(0, 30), (0.5, 30), (1, 29), (29.9, 1), (-3, 30)])
def test_demo_counts_days_left_from_first_boot(appliance: Path, elapsed: float, left: int):
    now = FIRST_BOOT + dt.timedelta(days=elapsed)
    state = licence_status(appliance, now)
    assert (state.kind, state.serial, state.days_left) == ("demo", SERIAL, left)
    assert state.expires == FIRST_BOOT + DEMO_DAYS * DAY
    assert state.features == FEATURES and state.accepts_new_connections
    assert "stop accepting new connections" in state.expiry_effect
    assert f"in {left} day" in state.expiry_effect
    # the console's own arithmetic agrees
    assert demo_licence(FIRST_BOOT, now).days_left == left


def test_demo_expires_after_thirty_days(appliance: Path):
    state = licence_status(appliance, FIRST_BOOT + DEMO_DAYS * DAY)
    assert (state.kind, state.days_left, state.features) == ("expired", 0, ())
    assert not state.accepts_new_connections
    assert state.expiry_effect.startswith("The licence expired on 2026-03-31")
    assert "established carry on" in state.expiry_effect


def test_clock_can_be_moved_by_the_environment(appliance: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(NOW_ENV, "2026-03-21T12:00:00Z")
    assert licence_status(appliance).days_left == 10
    monkeypatch.setenv(NOW_ENV, "2026-04-01T00:00:00+00:00")
    assert licence_status(appliance).kind == "expired"


def test_without_identity_the_clock_starts_with_the_store(tmp_path: Path):
    assert licence_status(tmp_path).kind == "none"
    ConfigStore(tmp_path / "passerelle.db").close()
    created = dt.datetime.now(dt.UTC)
    state = licence_status(tmp_path, created + 3 * DAY)
    assert (state.kind, state.serial, state.days_left) == ("demo", "", 27)
    assert "configuration store was created" in state.note
    assert state.started is not None and abs(state.started - created) < dt.timedelta(minutes=1)
    # kept: the start does not move with later calls or pruning
    assert (tmp_path / "demo-clock.json").exists()
    assert licence_status(tmp_path, created + 31 * DAY).kind == "expired"


def test_activation_with_a_vendor_key(appliance: Path, vendor: Ed25519PrivateKey):
    now = FIRST_BOOT + 5 * DAY
    state = activate(appliance, licence_text(vendor), now, public_key=vendor.public_key())
    assert (state.kind, state.serial, state.customer) == ("activated", SERIAL, "Contoso")
    assert state.days_left == 362
    stored = licence_status(appliance, now + 100 * DAY, public_key=vendor.public_key())
    assert (stored.kind, stored.days_left) == ("activated", 262)
    assert stored.features == FEATURES
    assert "stop accepting new connections" in stored.expiry_effect
    after = licence_status(appliance, FIRST_BOOT + 368 * DAY, public_key=vendor.public_key())
    assert (after.kind, after.features, after.accepts_new_connections) == ("expired", (), False)


def test_the_public_key_comes_from_the_environment(
    appliance: Path, vendor: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    pem = vendor.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "vendor.pem"
    path.write_bytes(pem)
    text = licence_text(vendor)
    with pytest.raises(LicenceError, match="signature does not match"):
        activate(appliance, text, FIRST_BOOT + 5 * DAY)  # the shipped vendor key did not sign it
    monkeypatch.setenv(PUBLIC_KEY_ENV, str(path))
    assert activate(appliance, text, FIRST_BOOT + 5 * DAY).kind == "activated"
    monkeypatch.setenv(PUBLIC_KEY_ENV, pem.decode())
    assert licence_status(appliance, FIRST_BOOT + 5 * DAY).kind == "activated"


def test_the_shipped_vendor_key_is_an_ed25519_public_key():
    assert public_key().public_bytes_raw()


def tampered(text: str, change: dict) -> str:
    document = json.loads(text)
    document["payload"].update(change)
    return json.dumps(document, indent=4)


@pytest.mark.parametrize(
    ("make", "field", "words"),
    [
        (
            lambda k: tampered(licence_text(k), {"expires": "2099-01-01T00:00:00Z"}),
            "signature",
            "altered",
        ),
        (lambda k: tampered(licence_text(k), {"features": ["templates"]}), "signature", "altered"),
        (lambda k: licence_text(Ed25519PrivateKey.generate()), "signature", "not issued"),
        (
            lambda k: licence_text(k, serial="PSL-ZZZZZZZZZZZZ"),
            "payload.serial",
            "for serial PSL-ZZZZZZZZZZZZ",
        ),
        (lambda k: licence_text(k, days=1), "payload.expires", "expired on 2026-03-04"),
        (lambda k: licence_text(k, issued=FIRST_BOOT + 30 * DAY), "payload.issued", "future"),
        (lambda k: "not json", "", "not JSON"),
        (lambda k: '{"payload": {}}', "", "payload and signature"),
    ],
)
def test_bad_licences_are_refused_and_not_stored(
    appliance: Path, vendor: Ed25519PrivateKey, make, field: str, words: str
):
    with pytest.raises(LicenceError) as caught:
        activate(appliance, make(vendor), FIRST_BOOT + 5 * DAY, public_key=vendor.public_key())
    assert caught.value.field == field
    assert words in str(caught.value)
    assert not (appliance / LICENCE_FILE).exists()
    assert licence_status(appliance, FIRST_BOOT + 5 * DAY).kind == "demo"


def test_reformatting_keeps_a_licence_valid(appliance: Path, vendor: Ed25519PrivateKey):
    text = tampered(licence_text(vendor), {})
    assert activate(appliance, text, FIRST_BOOT + 5 * DAY, public_key=vendor.public_key()).kind == (
        "activated"
    )


def test_a_stored_licence_altered_later_falls_back_to_the_demo(
    appliance: Path, vendor: Ed25519PrivateKey
):
    activate(appliance, licence_text(vendor), FIRST_BOOT + 5 * DAY, public_key=vendor.public_key())
    path = appliance / LICENCE_FILE
    path.write_text(tampered(path.read_text(), {"customer": "Someone else"}))
    state = licence_status(appliance, FIRST_BOOT + 6 * DAY, public_key=vendor.public_key())
    assert state.kind == "demo" and "stored licence is not valid" in state.note


def test_activation_needs_an_identity(tmp_path: Path, vendor: Ed25519PrivateKey):
    with pytest.raises(LicenceError, match="no serial number") as caught:
        activate(tmp_path, licence_text(vendor), FIRST_BOOT, public_key=vendor.public_key())
    assert caught.value.field == "payload.serial"
