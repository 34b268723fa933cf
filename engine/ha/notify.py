"""keepalived's notify script: ``python -m passerelle.engine.ha.notify MASTER|BACKUP|FAULT``.

It only writes the role file; the engine watches that file, so the role has one source of
truth that the console and the engine read alike.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from passerelle.engine.ha.state import DEFAULT_STATE_FILE, ROLES, write_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("state", choices=sorted(ROLES), help="the state keepalived entered")
    parser.add_argument(
        "--state-file",
        type=Path,
        default=DEFAULT_STATE_FILE,
        help="role file to write (default: %(default)s)",
    )
    parser.add_argument("--peer", help="the peer's address, shown after the role")


def run(args: argparse.Namespace) -> int:
    try:
        write_state(args.state_file, ROLES[args.state], args.peer)
    except OSError as exc:
        print(f"passerelle ha notify: {args.state_file}: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="passerelle ha notify", description="Record the HA role keepalived reports."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
