"""The UI's blueprint, its route decorator and the state it keeps per application."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint, current_app

View = TypeVar("View", bound=Callable[..., Any])

EXTENSION = "passerelle.ui"
HA_STATE_KEY = "PASSERELLE_HA_STATE"  # app.config override, for tests and other layouts
HA_STATE_FILE = Path("/run/passerelle/ha-state")

blueprint = Blueprint(
    "ui", __name__, template_folder="templates", static_folder=None, url_prefix=""
)


def page(rule: str, methods: Iterable[str] = ("GET",)) -> Callable[[View], View]:
    """Register a UI view. The API's own authentication skips it (``public``): pages check
    the session themselves and send the browser to the login page instead of answering 401."""

    def register(view: View) -> View:
        view.public = True  # type: ignore[attr-defined]
        blueprint.add_url_rule(rule, view.__name__, view, methods=list(methods))
        return view

    return register


@dataclass
class Sample:
    time: float
    requests: int


@dataclass
class UiState:
    """What the UI remembers between requests of one application."""

    last_sample: Sample | None = None
    rate: float | None = None

    def requests_per_second(self, requests: int, now: float | None = None) -> float | None:
        """Rate between the previous sample and this one; the previous one is kept until a
        newer one is at least a second away, so quick reloads still see a real interval."""
        now = time.monotonic() if now is None else now
        previous = self.last_sample
        if previous is None or requests < previous.requests:  # first look, or engine restart
            self.last_sample, self.rate = Sample(now, requests), None
            return None
        elapsed = now - previous.time
        if elapsed >= 1.0:
            self.rate = (requests - previous.requests) / elapsed
            self.last_sample = Sample(now, requests)
        return self.rate


def ui_state() -> UiState:
    return current_app.extensions.setdefault(EXTENSION, UiState())


def ha_state_file() -> Path:
    return Path(current_app.config.get(HA_STATE_KEY, HA_STATE_FILE))
