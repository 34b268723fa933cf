"""Every configuration change: read, modify a copy, validate it whole, store if still current.

Concurrent edits of different things never lose an update: a change computed from a version
that someone else replaced meanwhile is recomputed from the new one. A client that sent
If-Match asked for its exact version, so it gets 412 instead of a silent merge.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import gevent
from flask import g, request

from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.store import StaleVersionError
from passerelle.engine.model.config import Config
from passerelle.engine.model.errors import ConfigError, validate_config

T = TypeVar("T")
ATTEMPTS = 10


@dataclass(frozen=True)
class Edited:
    version: int
    changed: bool
    config: Config  # as stored


def note(action: str, version: int | None = None) -> None:
    """What this request did, for the audit log (written once the response is known)."""
    g.audit_action = action
    g.audit_version = version


def if_match() -> set[int] | None:
    """Versions the client's If-Match accepts; None when any version will do.

    A tag that is not one of ours matches no version, so the change fails with 412 (RFC 9110).
    """
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    versions: set[int] = set()
    for tag in header.split(","):
        text = tag.strip().removeprefix("W/").strip('"')
        if text.isdigit() and len(text) < 19:
            versions.add(int(text))
    return versions


def current() -> tuple[int, Config]:
    version, config = context().store.current()
    return (version.number if version else 0), config


def check_reserved(config: Config) -> None:
    for i, vs in enumerate(config.virtual_services):
        for address, port in context().reserved:
            wildcard = address in ("0.0.0.0", "::") or vs.address in ("0.0.0.0", "::")
            if vs.protocol == "tcp" and port in vs.ports and (wildcard or vs.address == address):
                raise ApiError(
                    422,
                    f"{address}:{port} is the management listener; a virtual service cannot use it",
                    f"virtual_services[{i}].ports",
                )


def edit(action: str, mutate: Callable[[dict[str, Any]], T]) -> tuple[Edited, T]:
    """Apply ``mutate`` to a copy of the current configuration (as JSON data) and store it.

    ``mutate`` raises ApiError for a missing or conflicting resource; whatever it returns is
    handed back. Nothing is stored unless the whole result validates.
    """
    ctx = context()
    wanted = if_match()
    user = g.get("user", "")
    with ctx.edit_lock:
        for attempt in range(ATTEMPTS):
            number, config = current()
            data = config.model_dump(mode="json")
            result = mutate(data)
            try:
                new = validate_config(data)
            except ConfigError as exc:
                raise ApiError.from_config_error(exc) from None
            check_reserved(new)
            # Only a request that would otherwise succeed fails its precondition (RFC 9110 13.2.1)
            if wanted is not None and number not in wanted:
                raise ApiError(
                    412,
                    f"the configuration is now at version {number}",
                    "If-Match",
                    headers={"ETag": f'"{number}"'},
                )
            try:
                stored, changed = ctx.store.apply_if_changed(
                    new, author=user or "api", comment=action, expected=number
                )
            except StaleVersionError:
                if wanted is not None:
                    raise ApiError(412, "the configuration changed meanwhile", "If-Match") from None
                gevent.sleep(random.uniform(0, 0.01 * (attempt + 1)))
                continue
            note(action, stored.number if changed else None)
            return Edited(stored.number, changed, new), result
    raise ApiError(409, "the configuration kept changing; try again")
