"""Command-line options shared by ``passerelle firstboot`` and ``passerelle console``."""

from __future__ import annotations

import argparse

from passerelle.firstboot.paths import Paths
from passerelle.firstboot.system import System, SystemActionError, system_for


def add_root_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        default="/",
        metavar="DIR",
        help="root prefix for every file read and written (default: %(default)s)",
    )
    parser.add_argument(
        "--system",
        choices=("live", "recording"),
        default=None,
        help="'live' runs networkctl, hostnamectl, ssh-keygen, systemctl; 'recording' only "
        "logs them to DIR/run/passerelle/recorded-actions.jsonl (default: live for the root /, "
        "recording otherwise)",
    )


def paths_and_system(args: argparse.Namespace) -> tuple[Paths, System]:
    from passerelle.cli import CommandError  # the cli imports this module's callers

    paths = Paths.at(args.root)
    if not paths.root.is_dir():
        raise CommandError(f"--root {args.root} is not a directory")
    try:
        return paths, system_for(paths, args.system)
    except SystemActionError as exc:
        raise CommandError(f"{exc}; use --system recording") from None
