"""Applying a configuration file: validate it whole, store it as a new version, say what happened.

One implementation for both places that do it: ``passerelle config apply`` when no engine runs
on the store, and the engine itself when the command hands the file over its control socket.
Either way the same file gives the same messages and exit status.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from passerelle.engine.manage.control import Outcome
from passerelle.engine.manage.files import parse_config_bytes
from passerelle.engine.manage.store import ConfigStore, StaleVersionError, StoreError
from passerelle.engine.model.errors import ConfigError, validate_config
from passerelle.engine.model.ha import keep_local_ha

ApplyHandler = Callable[[dict[str, Any], bytes], Outcome]


def problem_lines(exc: ConfigError) -> str:
    """Every problem of an invalid configuration, one ``error:`` line each, field first."""
    return "".join(
        f"error: {field}: {message}\n" if field else f"error: {message}\n"
        for field, message in exc.problems
    )


def applied_line(number: int, added: bool) -> str:
    return f"applied version {number}\n" if added else f"unchanged, version {number}\n"


def apply_config(
    load: Callable[[], dict[str, Any]],
    open_store: Callable[[], AbstractContextManager[ConfigStore]],
    *,
    author: str,
    comment: str = "",
    expected: int | None = None,
    stored: Callable[[int], object] | None = None,
) -> Outcome:
    """Validate what ``load`` reads, then store it unless it equals the current version.

    Nothing is stored unless the whole configuration is valid. ``stored`` is called with the
    new version's number once it is committed (not when unchanged), before the outcome returns.
    """
    try:
        config = validate_config(load())
    except ConfigError as exc:
        return Outcome(status=1, stderr=problem_lines(exc))
    try:
        with open_store() as store:
            try:
                config = keep_local_ha(config, store.current()[1])
                version, added = store.apply_if_changed(
                    config, author=author, comment=comment, expected=expected
                )
            except StaleVersionError as exc:
                return Outcome(status=2, failure=f"not applied: {exc}")
    except StoreError as exc:
        return Outcome(status=2, failure=str(exc))
    if added and stored is not None:
        stored(version.number)
    return Outcome(stdout=applied_line(version.number, added))


def apply_action(store: ConfigStore, stored: Callable[[int], object]) -> ApplyHandler:
    """The engine's ``apply`` control action: the command's file, applied by the engine.

    ``stored`` makes a new version live; the answer waits for it, so once the command returns
    the workers run what it applied.
    """

    def handle(header: dict[str, Any], body: bytes) -> Outcome:
        name, author, comment = header.get("name"), header.get("author"), header.get("comment")
        expected = header.get("expected")
        if not (
            isinstance(name, str)
            and isinstance(author, str)
            and isinstance(comment, str)
            and (expected is None or (isinstance(expected, int) and not isinstance(expected, bool)))
        ):
            return Outcome(status=2, failure="the engine could not read the request")
        return apply_config(
            lambda: parse_config_bytes(name, body),
            lambda: nullcontext(store),
            author=author,
            comment=comment,
            expected=expected,
            stored=stored,
        )

    return handle
