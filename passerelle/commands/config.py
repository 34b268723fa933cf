"""``passerelle config``: validate, apply, export, list and roll back configurations.

``apply`` is what scripts run on every change, so it starts light: when an engine runs on the
store it hands the file to that engine over its control socket (the engine has the configuration
model built already and makes the version live before answering), and only otherwise imports the
model, the file readers and the store to do the same work itself. The other actions import them
when they run.
"""

from __future__ import annotations

import argparse
import os
import sys

from passerelle.cli import ArgumentParser, CommandError
from passerelle.engine.manage import control
from passerelle.engine.manage.location import DEFAULT_PATH, PATH_ENV, control_socket, store_path

# Neither `typing` nor `contextlib` nor `pathlib` at run time: each costs `config apply` a
# millisecond or more before it has done anything.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager
    from typing import Any

    from passerelle.engine.manage.store import ConfigStore
    from passerelle.engine.model.config import Config

STDIN = "-"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config",
        help="validate, apply, export and roll back configurations",
        description="Manage the versioned configuration that the engine runs.",
    )
    parser.add_argument("--db", metavar="PATH", help=_db_help())
    # Also accepted after the sub-command; SUPPRESS keeps it from erasing an earlier --db.
    common = ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=_db_help())
    commands = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    validate = commands.add_parser(
        "validate",
        help="check a configuration file without applying it",
        description="Check a YAML or JSON configuration file; exit 1 listing every problem.",
    )
    validate.add_argument("file", metavar="FILE", help="YAML or JSON file, '-' for stdin")
    validate.set_defaults(run=run_validate)

    apply = commands.add_parser(
        "apply",
        parents=[common],
        help="validate a configuration file and make it the running configuration",
        description="Validate FILE as a whole and store it as a new version; the engine "
        "picks it up. An invalid file changes nothing (exit 1).",
    )
    apply.add_argument("file", metavar="FILE", help="YAML or JSON file, '-' for stdin")
    apply.add_argument("--comment", default="", help="why this change (shown by history)")
    apply.add_argument("--author", default=None, help="who (default: the login name)")
    apply.add_argument(
        "--expect-version",
        type=int,
        metavar="N",
        help="refuse unless N is still the latest version (guards against concurrent edits)",
    )
    apply.set_defaults(run=run_apply)

    export = commands.add_parser(
        "export",
        parents=[common],
        help="print the current (or an earlier) configuration",
        description="Print a configuration that 'apply' accepts back unchanged.",
    )
    export.add_argument("--format", choices=("yaml", "json"), default="yaml")
    export.add_argument("--version", type=int, metavar="N", help="an earlier version")
    export.add_argument(
        "--full", action="store_true", help="include fields left at their default values"
    )
    export.set_defaults(run=run_export)

    history = commands.add_parser(
        "history",
        parents=[common],
        help="list stored versions, newest first",
        description="List stored configuration versions, newest first.",
    )
    history.add_argument("--limit", type=int, default=50, metavar="N", help="default 50")
    history.set_defaults(run=run_history)

    rollback = commands.add_parser(
        "rollback",
        parents=[common],
        help="apply an earlier version again",
        description="Apply version N again, as a new version (history is never rewritten).",
    )
    rollback.add_argument("number", type=int, metavar="N", help="the version to return to")
    rollback.add_argument("--author", default=None, help="who (default: the login name)")
    rollback.set_defaults(run=run_rollback)


def _db_help() -> str:
    return f"configuration database (default: ${PATH_ENV} or {DEFAULT_PATH})"


def _open_store(args: argparse.Namespace) -> AbstractContextManager[ConfigStore]:
    """The store named by --db, closed afterwards; its errors end the command with their
    message rather than a traceback."""
    from contextlib import contextmanager

    from passerelle.engine.manage.store import ConfigStore, StoreError

    @contextmanager
    def opened() -> Iterator[ConfigStore]:
        try:
            with ConfigStore(store_path(getattr(args, "db", None))) as store:
                yield store
        except StoreError as exc:
            raise CommandError(str(exc)) from None

    return opened()


def _author(args: argparse.Namespace) -> str:
    if args.author:
        return str(args.author)
    # getpass.getuser()'s rule, without importing getpass (and termios) for it
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if name := os.environ.get(variable):
            return name
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        return "cli"


def _load(path: str) -> Config | None:
    """The validated configuration, or None after printing every problem to stderr."""
    from passerelle.engine.manage.applying import problem_lines
    from passerelle.engine.manage.files import load_config_file
    from passerelle.engine.model.errors import ConfigError, validate_config

    try:
        return validate_config(load_config_file(path))
    except ConfigError as exc:
        sys.stderr.write(problem_lines(exc))
        return None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def run_validate(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if config is None:
        return 1
    print(
        f"valid: {_plural(len(config.virtual_services), 'virtual service')}, "
        f"{_plural(len(config.certificates), 'certificate')}"
    )
    return 0


def run_apply(args: argparse.Namespace) -> int:
    author = _author(args)
    try:
        name, raw = _read(args.file)
    except OSError:
        outcome = _apply_here(args, author, None)  # which says why, as it always has
    else:
        outcome = _apply_through_engine(args, author, name, raw)
        if outcome is None:
            outcome = _apply_here(args, author, (name, raw))
    sys.stdout.write(outcome.stdout)
    sys.stderr.write(outcome.stderr)
    if outcome.failure is not None:
        raise CommandError(outcome.failure)
    return outcome.status


def _read(file: str) -> tuple[str, bytes]:
    """(the name that messages use for the file, its bytes)."""
    if file == STDIN:
        return control.STDIN_NAME, sys.stdin.buffer.read()
    with open(file, "rb") as stream:
        return file, stream.read()


def _apply_through_engine(
    args: argparse.Namespace, author: str, name: str, raw: bytes
) -> control.Outcome | None:
    """The outcome of the engine running on the store applying the file; None when no engine
    listens on the store's control socket."""
    path = control_socket(getattr(args, "db", None))
    try:
        connection = control.connect(path)
    except control.NoEngine:
        return None
    fields: dict[str, object] = {
        "name": name,
        "author": author,
        "comment": args.comment,
        "expected": args.expect_version,
    }
    try:
        return control.ask(connection, "apply", fields, raw)
    except control.NoAnswer as exc:
        # Not applied here instead: the engine may have stored it, and twice is not once.
        raise CommandError(
            f"the engine at {path} gave no answer ({exc}): whether {name} was applied is "
            "unknown; 'passerelle config history' tells"
        ) from None


def _apply_here(
    args: argparse.Namespace, author: str, read: tuple[str, bytes] | None
) -> control.Outcome:
    """Apply the file in this process: the file's ``read`` (name, bytes), or None to read it."""
    from passerelle.engine.manage.applying import apply_config, parse_config_bytes
    from passerelle.engine.manage.files import load_config_file
    from passerelle.engine.manage.store import ConfigStore

    return apply_config(
        (lambda: parse_config_bytes(*read)) if read else (lambda: load_config_file(args.file)),
        lambda: ConfigStore(store_path(getattr(args, "db", None))),
        author=author,
        comment=args.comment,
        expected=args.expect_version,
    )


def run_export(args: argparse.Namespace) -> int:
    from passerelle.engine.manage.files import dump_config

    with _open_store(args) as store:
        try:
            if args.version is None:
                _, config = store.current()
            else:
                _, config = store.get(args.version)
        except KeyError:
            raise CommandError(f"no version {args.version}") from None
    sys.stdout.write(dump_config(config, args.format, defaults=args.full))
    return 0


def run_history(args: argparse.Namespace) -> int:
    import datetime

    with _open_store(args) as store:
        versions = store.history(args.limit)
    if not versions:
        print("no configuration applied yet", file=sys.stderr)
        return 0
    rows = [("VERSION", "TIME", "AUTHOR", "COMMENT")]
    for v in versions:
        created = datetime.datetime.fromtimestamp(v.created).astimezone()
        # a comment is free text: keep the table one line per version
        comment = " ".join(v.comment.split())
        rows.append((str(v.number), created.isoformat(timespec="seconds"), v.author, comment))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        print(f"{line}  {row[3]}".rstrip())
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        try:
            version, added = store.rollback_if_changed(args.number, author=_author(args))
        except KeyError:
            raise CommandError(f"no version {args.number}") from None
    if added:
        print(f"rolled back to version {args.number} as version {version.number}")
    else:
        print(f"unchanged, version {version.number} already has that configuration")
    return 0
