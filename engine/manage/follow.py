"""Keeps the running engine on the store's latest configuration version.

`passerelle config apply` (another process) commits a new version; the engine notices by polling
the cheap latest-number query, so a change reaches traffic within one poll interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent

from passerelle.engine.manage.store import ConfigStore, StoreError
from passerelle.engine.model.config import Config

log = logging.getLogger("passerelle.follow")

POLL_INTERVAL = 0.05


class StoreFollower:
    def __init__(self, store: ConfigStore, apply: Callable[[Config, int], dict[str, Any]]) -> None:
        self.store = store
        self.apply = apply
        self.applied = 0

    def sync(self) -> dict[str, Any] | None:
        """Apply the latest stored version if it is not the one running."""
        latest = self.store.latest_number()
        if latest == self.applied:
            return None
        version, config = self.store.current()
        number = version.number if version else 0
        result = self.apply(config, number)
        self.applied = number
        log.info("configuration version %d applied", number)
        return result

    def run(self) -> None:
        while True:
            try:
                self.sync()
            except StoreError as exc:
                log.error("configuration store: %s", exc)
            gevent.sleep(POLL_INTERVAL)
