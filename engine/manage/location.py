"""Where the configuration store and the engine's control socket live.

Kept apart from the store itself: ``passerelle config apply`` needs these paths before it knows
whether it will ever open the store, and must not pay for the configuration model to learn them.
Nor for pathlib (with the modules it pulls in, a tenth of the command's start): the command names
the socket with ``control_socket``, plain strings; everything else uses the ``Path`` functions.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_PATH = "/var/lib/passerelle/passerelle.db"
PATH_ENV = "PASSERELLE_DB"
CONTROL_SUFFIX = ".sock"


def store_path(explicit: str | Path | None = None) -> Path:
    """Where the store lives: an explicit path, else $PASSERELLE_DB, else the appliance default."""
    from pathlib import Path

    return Path(_store_name(explicit))


def control_path(store: str | Path) -> Path:
    """The running engine's control socket: beside the store it follows, so whoever names the
    store (``--db``) finds the engine that serves it without another option."""
    from pathlib import Path

    return Path(_socket_beside(os.fspath(store)))


def control_socket(explicit: str | None = None) -> str:
    """``control_path(store_path(explicit))`` as a string, without importing pathlib."""
    return _socket_beside(_store_name(explicit))


def _store_name(explicit: str | os.PathLike[str] | None) -> str:
    return os.fspath(explicit or os.environ.get(PATH_ENV) or DEFAULT_PATH)


def _socket_beside(store: str) -> str:
    """``str(Path(store).with_name(Path(store).name + CONTROL_SUFFIX))``, ValueError included."""
    normal = _posix_normal(store)
    if normal.rpartition("/")[2] in ("", "."):
        raise ValueError(f"{store!r} has an empty name")
    return normal + CONTROL_SUFFIX


def _posix_normal(path: str) -> str:
    """``str(PurePosixPath(path))``: repeated and trailing slashes and ``.`` parts dropped, a
    leading ``//`` kept (POSIX leaves its meaning to the system), ``.`` for nothing."""
    root = ""
    if path.startswith("/"):
        root = "//" if path.startswith("//") and not path.startswith("///") else "/"
    parts = [part for part in path.split("/") if part and part != "."]
    return root + "/".join(parts) or "."
