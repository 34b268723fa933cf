"""The one ``passerelle`` command; each sub-command lives in its own module under commands/."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

TYPE_CHECKING = False  # `typing` itself would cost `config apply` a few milliseconds
if TYPE_CHECKING:
    from typing import Any

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


class HelpFormatter(argparse.HelpFormatter):
    """argparse's own formatter at the width argparse picks, found without importing shutil.

    argparse builds a formatter for every option it is given, and its own imports shutil (and
    with it bz2 and lzma) for the terminal width: milliseconds that ``config apply``, run by
    scripts on every change, does not spend.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = terminal_columns() - 2  # argparse's margin
        super().__init__(prog, indent_increment, max_help_position, width)


class ArgumentParser(argparse.ArgumentParser):
    """Formats with HelpFormatter unless told otherwise; sub-command parsers are of the same
    class as their parent, so every command's parsers do."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def terminal_columns() -> int:
    """What ``shutil.get_terminal_size().columns`` gives: $COLUMNS, else the terminal of
    standard output, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every sub-command, or only ``command`` when it names one.

    Each command module imports what its command runs; a short-lived command such as
    ``config apply`` (scripts run it on every change) must not pay for the imports of all the
    others (the console, first boot and licence commands pull in much more than the model).
    """
    parser = ArgumentParser(
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


def run() -> None:
    """The ``passerelle`` program: ``main``, its result the exit status.

    What the command leaves behind is frozen out of the garbage collector first: on the way out
    Python's last collections would walk every object the imports made, about a tenth of what
    ``config apply`` costs, after its work is done. Only here, where the process ends:
    ``main`` called in a process that goes on (tests) leaves the collector alone.
    """
    status = main()
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    run()
