"""Every configuration change the UI makes goes through the API's change helper.

``changes.edit`` reads the current configuration, applies the change to a copy, validates the
whole and stores it atomically with an audit record, exactly as for an API request; this module
only turns its refusal into problems a page can show next to the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from passerelle.engine.manage.api.changes import edit
from passerelle.engine.manage.api.errors import ApiError


@dataclass
class Outcome:
    ok: bool
    status: int = 200
    message: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)
    version: int | None = None  # the stored version, when known
    result: Any = None  # what the API function answered, when it succeeded


def refused(exc: ApiError) -> Outcome:
    problems = [(p["field"], p["error"]) for p in exc.problems or []] or [(exc.field, exc.message)]
    return Outcome(False, exc.status, exc.message, problems)


def change(action: str, mutate: Callable[[dict[str, Any]], Any]) -> Outcome:
    try:
        edited, _ = edit(action, mutate)
    except ApiError as exc:
        return refused(exc)
    return Outcome(True, version=edited.version)


def call(api_view: Callable[..., Any], *args: Any) -> Outcome:
    """Run an API view that takes nothing from the request body (state changes, deletions),
    or an API function given its body, so the UI and the API share the very same code for it."""
    try:
        result = api_view(*args)
    except ApiError as exc:
        return refused(exc)
    return Outcome(True, result=result)
