"""The time the licence is judged at: the caller's, else $PASSERELLE_LICENCE_NOW, else now.

The environment override lets a test (or a support engineer) move the clock of a whole
process, e.g. an engine started as a subprocess, to see what expiry does.
"""

from __future__ import annotations

import datetime as dt
import os

NOW_ENV = "PASSERELLE_LICENCE_NOW"  # ISO 8601 with a time zone, e.g. 2030-01-01T00:00:00Z


def now(explicit: dt.datetime | None = None) -> dt.datetime:
    if explicit is not None:
        return explicit if explicit.tzinfo else explicit.replace(tzinfo=dt.UTC)
    override = os.environ.get(NOW_ENV, "").strip()
    if override:
        moment = dt.datetime.fromisoformat(override)
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)
