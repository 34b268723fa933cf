"""``passerelle config`` run as a real process against a store in a temporary directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from passerelle.engine.manage.files import load_config_file
from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.model import Config, validate_config
from passerelle.engine.tls.certificates import make_self_signed

CERT_PEM, KEY_PEM = make_self_signed("www.example.com", ["www.example.com"])
SITE = """\
certificates:
  - name: www
    cert_pem: |
@CERT@
    key_pem: |
@KEY@
virtual_services:
  - name: web
    address: 127.0.0.1
    ports: [443]
    tls: {certificates: [www]}
    subvs:
      - name: api
        rules: [{path_prefix: /api/}]
        real_servers: [{address: 127.0.0.1, port: 9001}]
        persistence: {mode: active_cookie}
        health_check: {type: http, path: /health}
      - name: static
        real_servers: [{address: 127.0.0.1, port: 9002}]
    default_subvs: static
  - name: ssh
    address: 127.0.0.1
    ports: [2222]
    mode: l4
    real_servers: [{address: 127.0.0.2, port: 22}]
""".replace("@CERT@\n", textwrap.indent(CERT_PEM, " " * 6)).replace(
    "@KEY@\n", textwrap.indent(KEY_PEM, " " * 6)
)

SMALL = """\
virtual_services:
  - name: web
    address: 127.0.0.1
    ports: [8080]
    real_servers: [{address: 127.0.0.1, port: 9000}]
"""

# the port is out of range: the whole file must be refused
INVALID = SMALL.replace("ports: [8080]", "ports: [70000]")


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "var" / "passerelle.db"
        self.env = {**os.environ, "PASSERELLE_DB": str(self.db)}

    def file(self, name: str, text: str) -> Path:
        path = self.tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "passerelle", "config", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def store_state(self) -> tuple[int, Config]:
        with ConfigStore(self.db) as store:
            return store.latest_number(), store.current()[1]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_every_action_has_help(cli: Cli) -> None:
    for action in ([], ["validate"], ["apply"], ["export"], ["history"], ["rollback"]):
        result = cli(*action, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: passerelle config")


def test_validate_ok(cli: Cli) -> None:
    result = cli("validate", str(cli.file("site.yaml", SITE)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "valid: 2 virtual services, 1 certificate\n"
    assert not cli.db.exists()  # validating never touches the store


def test_validate_reports_every_problem_with_its_field(cli: Cli) -> None:
    text = INVALID.replace("address: 127.0.0.1\n    ports", "address: 300.0.0.1\n    ports")
    result = cli("validate", str(cli.file("bad.yaml", text)))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert any(line.startswith("error: virtual_services[0].ports[0]: ") for line in lines)
    assert any(line.startswith("error: virtual_services[0].address: ") for line in lines)


def test_validate_syntax_error_names_the_line(cli: Cli) -> None:
    path = cli.file("broken.yaml", "virtual_services:\n  - name: web\n   address: 127.0.0.1\n")
    result = cli("validate", str(path))
    assert result.returncode == 1
    assert re.match(r"error: .*broken\.yaml: YAML error at line 3\b", result.stderr)


def test_apply_then_export_gives_back_the_same_config(cli: Cli) -> None:
    path = cli.file("site.yaml", SITE)
    result = cli("apply", str(path), "--comment", "initial")
    assert (result.returncode, result.stdout) == (0, "applied version 1\n"), result.stderr
    expected = validate_config(load_config_file(path))
    assert cli.store_state() == (1, expected)

    for fmt in ("yaml", "json"):
        exported = cli("export", "--format", fmt)
        assert exported.returncode == 0, exported.stderr
        again = cli.file(f"export.{fmt}", exported.stdout)
        assert validate_config(load_config_file(again)) == expected
        # applying the export back is recognised as no change
        result = cli("apply", str(again))
        assert (result.returncode, result.stdout) == (0, "unchanged, version 1\n")
    full = json.loads(cli("export", "--format", "json", "--full").stdout)
    assert full["virtual_services"][1]["scheduling"] == "round_robin"  # a default, shown


def test_apply_from_stdin_and_db_option_in_either_place(cli: Cli) -> None:
    other = cli.tmp_path / "other.db"
    result = cli("--db", str(other), "apply", "-", stdin=SMALL)
    assert result.stdout == "applied version 1\n", result.stderr
    result = cli("export", "--db", str(other), "--format", "json")
    assert json.loads(result.stdout)["virtual_services"][0]["ports"] == [8080]
    assert not cli.db.exists()  # PASSERELLE_DB was overridden both times


def test_refused_apply_leaves_the_store_unchanged(cli: Cli) -> None:
    assert cli("apply", str(cli.file("site.yaml", SITE))).returncode == 0
    before = cli.store_state()
    export_before = cli("export").stdout

    result = cli("apply", str(cli.file("bad.yaml", INVALID)), "--comment", "broken")
    assert result.returncode == 1
    assert "virtual_services[0].ports[0]" in result.stderr
    assert result.stdout == ""
    assert cli.store_state() == before
    assert cli("export").stdout == export_before
    assert "broken" not in cli("history").stdout


def test_stale_expected_version_is_refused(cli: Cli) -> None:
    cli("apply", str(cli.file("site.yaml", SITE)))
    cli("apply", str(cli.file("small.yaml", SMALL)))
    result = cli("apply", str(cli.file("site.yaml", SITE)), "--expect-version", "1")
    assert result.returncode == 2
    assert "expected version 1 but the latest is 2" in result.stderr
    assert cli.store_state()[0] == 2


def test_history_lists_versions_newest_first(cli: Cli) -> None:
    assert cli("history").stdout == ""  # empty store: nothing to list
    cli("apply", str(cli.file("site.yaml", SITE)), "--comment", "first site", "--author", "alice")
    cli("apply", str(cli.file("small.yaml", SMALL)), "--comment", "smaller\nnow")
    result = cli("history")
    assert result.returncode == 0, result.stderr
    header, newest, oldest = result.stdout.splitlines()
    assert header.split() == ["VERSION", "TIME", "AUTHOR", "COMMENT"]
    assert newest.split()[0] == "2" and newest.endswith("smaller now")
    number, created, author, *comment = oldest.split()
    assert (number, author, " ".join(comment)) == ("1", "alice", "first site")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", created)
    assert len(cli("history", "--limit", "1").stdout.splitlines()) == 2


def test_rollback_and_export_of_an_old_version(cli: Cli) -> None:
    site = cli.file("site.yaml", SITE)
    cli("apply", str(site))
    cli("apply", str(cli.file("small.yaml", SMALL)))
    old = cli("export", "--version", "1", "--format", "json")
    assert len(json.loads(old.stdout)["virtual_services"]) == 2

    result = cli("rollback", "1")
    assert (result.returncode, result.stdout) == (0, "rolled back to version 1 as version 3\n")
    assert cli.store_state() == (3, validate_config(load_config_file(site)))
    assert "rollback to 1" in cli("history").stdout.splitlines()[1]

    missing = cli("rollback", "42")
    assert missing.returncode == 2
    assert "no version 42" in missing.stderr
    assert cli("export", "--version", "42").returncode == 2
    assert cli.store_state()[0] == 3


@pytest.mark.parametrize("action", [["history"], ["export"], ["rollback", "1"], ["apply", "@"]])
def test_an_unreadable_store_ends_the_command_with_a_message(cli: Cli, action: list[str]) -> None:
    cli.db.parent.mkdir(parents=True)
    cli.db.write_bytes(b"not a database, " * 256)
    site = str(cli.file("site.yaml", SMALL))
    result = cli(*[site if arg == "@" else arg for arg in action])
    assert result.returncode == 2
    assert result.stderr == f"passerelle config: cannot open {cli.db}: file is not a database\n"
