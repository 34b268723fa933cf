"""Factory reset: back to what the next boot's first-boot run will set up afresh.

Kept: identity.json (serial and demo licence start), so a licence bound to the serial stays
valid and a reset does not restart the demo period.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from passerelle.firstboot.paths import Paths

log = logging.getLogger("passerelle.firstboot")


def reset_targets(paths: Paths) -> list[Path]:
    db = paths.config_db
    return [
        paths.marker,  # first, so that a reset cut short still redoes the first boot
        paths.network_state,
        paths.initial_password,
        paths.password_reset,
        paths.tls_dir,
        db,
        db.with_name(db.name + "-wal"),
        db.with_name(db.name + "-shm"),
        paths.networkd_file,
        *sorted(paths.ssh_dir.glob("ssh_host_*")),
    ]


def factory_reset(paths: Paths) -> list[Path]:
    """Remove the appliance's configuration and secrets; the paths that were removed."""
    removed: list[Path] = []
    for target in reset_targets(paths):
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            continue
        removed.append(target)
        log.info("removed %s", target)
    return removed
