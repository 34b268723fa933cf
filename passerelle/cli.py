"""The one ``passerelle`` command; each sub-command lives in its own module under commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command name -> module under passerelle.commands exposing add_parser(subparsers)
COMMANDS = {
    "engine": "engine",
    "demo": "demo",
    "config": "config",
    "image": "image",
    "firstboot": "firstboot",
    "console": "console",
    "deploy": "deploy",
    "licence": "licence",
    "ha": "ha",
}


class CommandError(Exception):
    """A user-facing failure: printed to stderr without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="passerelle", description="Passerelle virtual load balancer and reverse proxy."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS.values():
        module = importlib.import_module(f"passerelle.commands.{module_name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CommandError as exc:
        print(f"passerelle {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
