"""``passerelle ha notify|check``: the commands keepalived runs (see notify.py and check.py)."""

from __future__ import annotations

import argparse
import sys

from passerelle.engine.ha import check, notify

DESCRIPTION = "Commands that keepalived runs for an HA pair; not meant to be run by hand."


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ha", help="HA helpers run by keepalived", description=DESCRIPTION
    )
    _add_commands(parser)


def _add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="ha_command", metavar="COMMAND", required=True)
    notify_parser = commands.add_parser("notify", help="record the role keepalived reports")
    notify.add_arguments(notify_parser)
    notify_parser.set_defaults(run=notify.run)
    check_parser = commands.add_parser("check", help="exit 0 if the local engine is healthy")
    check.add_arguments(check_parser)
    check_parser.set_defaults(run=check.run)


def main(argv: list[str] | None = None) -> int:
    """``python -m passerelle.engine.ha.command notify|check ...`` (what keepalived runs)."""
    parser = argparse.ArgumentParser(prog="passerelle ha", description=DESCRIPTION)
    _add_commands(parser)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
