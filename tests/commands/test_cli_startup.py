"""The `passerelle` command imports only the sub-command it runs: `config apply` (run by scripts on
every change) must not load the management plane, the console or first-boot code; help and
errors without a sub-command still list every command."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from passerelle import cli
from passerelle.cli import COMMANDS, build_parser, main
from passerelle.engine.manage.store import ConfigStore

# Loaded by other commands only; each costs a noticeable part of a command's start.
NOT_FOR_CONFIG = (
    "flask",
    "argon2",
    "passerelle.engine.manage.api",
    "passerelle.engine.runtime",
    "passerelle.firstboot",
    "passerelle.commands.console",
    "passerelle.commands.engine",
    "passerelle.commands.licence",
)

APPLY_AND_LIST_MODULES = """
import sys
from passerelle.cli import main
code = main(sys.argv[1:])
print(" ".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passerelle", *args], capture_output=True, text=True, timeout=60
    )


def test_config_apply_loads_neither_other_commands_nor_the_management_plane(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "virtual_services": [
                    {
                        "name": "web",
                        "address": "127.0.0.1",
                        "ports": [8080],
                        "real_servers": [{"address": "127.0.0.1", "port": 9000}],
                    }
                ]
            }
        )
    )
    db = tmp_path / "passerelle.db"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            APPLY_AND_LIST_MODULES,
            "config",
            "apply",
            str(config),
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "applied version 1"
    with ConfigStore(db) as store:
        assert store.current()[1].service("web").real_servers[0].port == 9000

    loaded = done.stderr.split()
    assert "passerelle.commands.config" in loaded
    assert "pydantic" in loaded  # the model validates the file
    unwanted = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in NOT_FOR_CONFIG)]
    assert unwanted == []


def test_help_without_a_sub_command_lists_every_command() -> None:
    done = run("--help")
    assert done.returncode == 0, done.stderr
    for command in COMMANDS:
        assert command in done.stdout


def test_an_unknown_sub_command_is_refused_with_the_list_of_commands() -> None:
    done = run("confgi", "apply")
    assert done.returncode == 2
    assert "invalid choice: 'confgi'" in done.stderr
    assert all(command in done.stderr for command in COMMANDS)


def test_a_sub_command_keeps_its_own_help_and_options() -> None:
    done = run("config", "apply", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: passerelle config apply")
    assert "--expect-version" in done.stdout


def test_the_program_exits_with_the_status_of_its_command(tmp_path: Path) -> None:
    done = run("config", "validate", str(tmp_path / "missing.yaml"))
    assert done.returncode == 1
    assert "cannot read" in done.stderr


def test_only_the_program_freezes_the_collector_on_its_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "missing.yaml")
    frozen = gc.get_freeze_count()
    assert main(["config", "validate", missing]) == 1
    assert gc.get_freeze_count() == frozen  # a caller that goes on keeps its collector

    monkeypatch.setattr(sys, "argv", ["passerelle", "config", "validate", missing])
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.run()
        assert exit_.value.code == 1
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_the_engine_takes_its_log_level_in_either_case() -> None:
    parser = build_parser("engine")
    assert parser.parse_args(["engine", "--log-level", "warning"]).log_level == "WARNING"
    assert parser.parse_args(["engine", "--log-level", "Debug"]).log_level == "DEBUG"
    with pytest.raises(SystemExit):
        parser.parse_args(["engine", "--log-level", "verbose"])
