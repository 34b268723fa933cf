"""`passerelle licence` as the vendor and the appliance run it: issue, activate and status as
real processes; the refusals through the same entry point in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from passerelle.cli import main
from passerelle.engine.manage.licence.clock import NOW_ENV
from passerelle.engine.manage.licence.signing import PUBLIC_KEY_ENV

SERIAL = "PSL-ABCDEFGHJKMN"


def passerelle(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSERELLE_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "passerelle", "licence", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
    )


@pytest.fixture
def appliance(tmp_path: Path) -> Path:
    folder = tmp_path / "appliance"
    folder.mkdir()
    (folder / "identity.json").write_text(
        json.dumps({"serial": SERIAL, "first_boot": "2026-11-01T00:00:00Z"})
    )
    return folder


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.delenv(PUBLIC_KEY_ENV, raising=False)
    monkeypatch.delenv(NOW_ENV, raising=False)
    private, public = tmp_path / "vendor.key", tmp_path / "vendor.pub"
    assert main(["licence", "keygen", "--private", str(private), "--public", str(public)]) == 0
    assert private.stat().st_mode & 0o077 == 0
    return private, public


def test_issue_activate_status_as_processes(tmp_path: Path, appliance: Path, keys):
    private, public = keys
    licence = tmp_path / "contoso.licence.json"
    issued = passerelle(
        "issue",
        "--key",
        str(private),
        "--serial",
        SERIAL,
        "--days",
        "365",
        "--features",
        "load-balancing,templates",
        "--customer",
        "Contoso",
        "--output",
        str(licence),
    )
    assert issued.returncode == 0, issued.stderr
    assert json.loads(licence.read_text())["payload"]["features"] == ["load-balancing", "templates"]
    vendor_key = {PUBLIC_KEY_ENV: str(public)}
    activated = passerelle("activate", str(licence), "--dir", str(appliance), env=vendor_key)
    assert activated.returncode == 0, activated.stderr
    assert "licence:   activated" in activated.stdout
    later = {**vendor_key, NOW_ENV: "2031-01-01T00:00:00Z"}
    expired = passerelle("status", "--json", "--dir", str(appliance), env=later)
    assert expired.returncode == 1
    state = json.loads(expired.stdout)
    assert (state["kind"], state["serial"], state["customer"]) == ("expired", SERIAL, "Contoso")
    assert "accept no new connections" in state["expiry_effect"]


def test_status_activate_and_refusals(
    tmp_path: Path, appliance: Path, keys, monkeypatch: pytest.MonkeyPatch, capsys
):
    private, public = keys
    licence, other = tmp_path / "mine.json", tmp_path / "other.json"
    common = ["licence", "issue", "--key", str(private), "--days", "30"]
    assert main([*common, "--serial", SERIAL, "--output", str(licence)]) == 0
    assert main([*common, "--serial", "PSL-ZZZZZZZZZZZZ", "--output", str(other)]) == 0
    capsys.readouterr()

    # the shipped vendor key did not sign these throwaway licences
    assert main(["licence", "activate", str(licence), "--dir", str(appliance)]) == 2
    assert "signature does not match" in capsys.readouterr().err

    monkeypatch.setenv(PUBLIC_KEY_ENV, str(public))
    assert main(["licence", "activate", str(other), "--dir", str(appliance)]) == 2
    err = capsys.readouterr().err
    assert f"for serial PSL-ZZZZZZZZZZZZ, but this appliance is {SERIAL}" in err
    document = json.loads(other.read_text())
    document["payload"]["serial"] = SERIAL
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    assert main(["licence", "activate", str(forged), "--dir", str(appliance)]) == 2
    assert "altered" in capsys.readouterr().err

    monkeypatch.setenv(NOW_ENV, "2026-11-21T00:00:00Z")
    assert main(["licence", "status", "--dir", str(appliance)]) == 0
    out = capsys.readouterr().out
    assert "licence:   demo" in out and "days left: 10" in out
    assert "stop accepting new connections" in out

    monkeypatch.delenv(NOW_ENV)
    assert main(["licence", "activate", str(licence), "--dir", str(appliance)]) == 0
    assert "licence:   activated" in capsys.readouterr().out


def test_vendor_commands_refuse_mistakes(tmp_path: Path, keys, capsys):
    private, public = keys
    again = ["licence", "keygen", "--private", str(private), "--public", str(public)]
    assert main(again) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    unknown = ["licence", "issue", "--key", str(private), "--serial", SERIAL, "--days", "3"]
    assert main([*unknown, "--features", "warp", "--output", str(tmp_path / "x.json")]) == 2
    assert "unknown features warp" in capsys.readouterr().err
    assert main([*unknown[:-1], "0"]) == 2
    assert "--days must be at least 1" in capsys.readouterr().err
