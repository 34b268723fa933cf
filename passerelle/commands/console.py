"""``passerelle console``: the VM console screen and settings wizard (systemd runs it on tty1)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from passerelle.cli import CommandError
from passerelle.firstboot.console.app import DEFAULT_REFRESH, run_console
from passerelle.firstboot.options import add_root_arguments, paths_and_system


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "console",
        help="the VM console: address, serial, licence, and the settings wizard",
        description="Show the address to browse to, the serial number, licence and HA state, "
        "and let the administrator set the address, netmask, gateway, DNS, hostname and admin "
        "password, or reset the appliance. Made for the bare 80x25 Linux console.",
    )
    add_root_arguments(parser)
    parser.add_argument(
        "--refresh",
        type=float,
        default=DEFAULT_REFRESH,
        metavar="SECONDS",
        help="redraw the main screen this often when idle (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.refresh <= 0:
        raise CommandError("--refresh must be a positive number of seconds")
    # warnings go to stderr, which the console's unit sends to the journal, not over the screen
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    paths, system = paths_and_system(args)
    return run_console(paths, system, refresh=args.refresh)
