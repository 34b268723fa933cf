"""`passerelle config apply` starts light: argparse's help layout without shutil, and the
configuration model only when no engine does the work (see test_config_cli_engine)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from passerelle.cli import HelpFormatter, build_parser


@pytest.mark.parametrize("columns", ["", "50", "100", "junk", "-3"])
def test_help_is_laid_out_at_the_width_argparse_picks(
    monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    if columns:
        monkeypatch.setenv("COLUMNS", columns)
    else:
        monkeypatch.delenv("COLUMNS", raising=False)
    ours, stock = HelpFormatter("passerelle"), argparse.HelpFormatter("passerelle")
    assert (ours._width, ours._max_help_position) == (stock._width, stock._max_help_position)


def test_every_config_parser_formats_without_shutil() -> None:
    script = (
        "import sys\n"
        "from passerelle.cli import build_parser\n"
        "parser = build_parser('config')\n"
        "parser.parse_args(['config', 'apply', 'site.yaml', '--db', 'x.db'])\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    assert "passerelle.commands.config" in loaded
    assert [m for m in loaded if m in ("shutil", "typing", "socket", "dataclasses")] == []
    assert not [m for m in loaded if m.startswith(("pydantic", "yaml", "passerelle.engine.model"))]


def test_sub_command_parsers_share_the_formatter() -> None:
    parser = build_parser("config")
    config = parser._subparsers._group_actions[0].choices["config"]  # type: ignore[union-attr]
    actions = config._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert config.formatter_class is HelpFormatter
    assert {name: p.formatter_class for name, p in actions.items()} == {
        name: HelpFormatter for name in ("validate", "apply", "export", "history", "rollback")
    }
