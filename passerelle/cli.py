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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every sub-command, or only ``command`` when it names one.

    Each command module imports what its command runs; a short-lived command such as
    ``config apply`` (scripts run it on every change) must not pay for the imports of all the
    others (the console, first boot and licence commands pull in much more than the model).
    """
    parser = argparse.ArgumentParser(
        prog="passerelle", description="Passerelle virtual load balancer and reverse proxy."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = [COMMANDS[command]] if command in COMMANDS else list(COMMANDS.values())
    for module_name in names:
        module = importlib.import_module(f"passerelle.commands.{module_name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Only a leading sub-command name narrows the parser; anything else (--help, a typo) gets
    # the full one, so its help and error messages list every command.
    parser = build_parser(argv[0] if argv else None)
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
