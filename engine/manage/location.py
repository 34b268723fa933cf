"""Where the configuration store and the engine's control socket live.

Kept apart from the store itself: ``passerelle config apply`` needs these paths before it knows
whether it will ever open the store, and must not pay for the configuration model to learn them.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_PATH = "/var/lib/passerelle/passerelle.db"
PATH_ENV = "PASSERELLE_DB"
CONTROL_SUFFIX = ".sock"


def store_path(explicit: str | Path | None = None) -> Path:
    """Where the store lives: an explicit path, else $PASSERELLE_DB, else the appliance default."""
    return Path(explicit or os.environ.get(PATH_ENV) or DEFAULT_PATH)


def control_path(store: str | Path) -> Path:
    """The running engine's control socket: beside the store it follows, so whoever names the
    store (``--db``) finds the engine that serves it without another option."""
    store = Path(store)
    return store.with_name(store.name + CONTROL_SUFFIX)
