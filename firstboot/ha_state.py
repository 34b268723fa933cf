"""The HA role the HA part reports in /run/passerelle/ha-state (first line, e.g. "active")."""

from __future__ import annotations

from passerelle.firstboot.files import read_first_line
from passerelle.firstboot.paths import Paths

STANDALONE = "standalone"
MAX_SHOWN = 60


def read_ha_state(paths: Paths) -> str:
    line = read_first_line(paths.ha_state)
    if line is None:
        return STANDALONE
    # shown on the console as is: keep it printable and on one screen line
    shown = "".join(ch for ch in line if ch.isprintable()).strip()[:MAX_SHOWN]
    return shown or STANDALONE
