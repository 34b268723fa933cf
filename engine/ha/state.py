"""The role file (``/run/passerelle/ha-state``): keepalived's notify writes it, all read it.

Its first line is shown as is on the console: ``active``, ``standby``, ``fault`` or ``stopped``,
optionally followed by `` (peer ADDRESS)``. No file means the appliance runs standalone.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STATE_FILE = Path("/run/passerelle/ha-state")

# keepalived's notify states -> the words people see
ROLES = {"MASTER": "active", "BACKUP": "standby", "FAULT": "fault", "STOP": "stopped"}
STANDALONE = "standalone"
UNKNOWN = "unknown"  # HA configured, keepalived has not reported yet


def state_line(role: str, peer: str | None = None) -> str:
    line = f"{role} (peer {peer})" if peer else role
    return line[:60]


def write_state(path: Path, role: str, peer: str | None = None) -> None:
    """Replace the file in one rename, so a reader never sees half a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(state_line(role, peer) + "\n", encoding="ascii")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def read_role(path: Path) -> str:
    """The first word of the file: active, standby, fault, stopped; standalone when absent."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return STANDALONE
    words = text.split(maxsplit=1)
    return words[0] if words else UNKNOWN


def clear_state(path: Path) -> None:
    path.unlink(missing_ok=True)
