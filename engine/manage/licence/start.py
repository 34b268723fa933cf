"""When the demo licence began: the appliance's first boot, or, where there was none (a
development engine, ``passerelle demo``), the creation of the configuration store.

The fallback is written to ``demo-clock.json`` the first time it is needed, so pruning old
configuration versions never moves it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

IDENTITY_FILE = "identity.json"
STORE_FILE = "passerelle.db"
CLOCK_FILE = "demo-clock.json"


@dataclass(frozen=True)
class Identity:
    serial: str
    first_boot: dt.datetime | None


@dataclass(frozen=True)
class DemoStart:
    moment: dt.datetime
    source: str  # "first-boot" or "store"


def read_identity(directory: Path) -> Identity | None:
    """identity.json as first boot wrote it; None when absent or unreadable."""
    try:
        data = json.loads((directory / IDENTITY_FILE).read_text(encoding="utf-8"))
        serial = str(data["serial"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        first_boot = dt.datetime.fromisoformat(str(data["first_boot"])).astimezone(dt.UTC)
    except (KeyError, ValueError, TypeError):
        first_boot = None
    return Identity(serial, first_boot)


def _store_created(path: Path) -> dt.datetime | None:
    if not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT MIN(created) FROM versions").fetchone()
    except sqlite3.Error:
        row = None
    created = row[0] if row and row[0] is not None else path.stat().st_mtime
    return dt.datetime.fromtimestamp(float(created), dt.UTC).replace(microsecond=0)


def _saved(directory: Path) -> dt.datetime | None:
    try:
        data = json.loads((directory / CLOCK_FILE).read_text(encoding="utf-8"))
        return dt.datetime.fromisoformat(str(data["start"])).astimezone(dt.UTC)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(directory: Path, moment: dt.datetime) -> None:
    text = json.dumps({"start": moment.isoformat(), "source": "store"}) + "\n"
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".demo-clock-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, directory / CLOCK_FILE)
    except OSError:
        pass  # a read-only folder: the clock is recomputed from the store next time


def demo_start(directory: Path, identity: Identity | None) -> DemoStart | None:
    """The demo's start; None when there is neither an identity nor a store (nothing to run)."""
    if identity is not None and identity.first_boot is not None:
        return DemoStart(identity.first_boot, "first-boot")
    saved = _saved(directory)
    if saved is not None:
        return DemoStart(saved, "store")
    created = _store_created(directory / STORE_FILE)
    if created is None:
        return None
    _save(directory, created)
    return DemoStart(created, "store")
