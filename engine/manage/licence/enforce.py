"""What licence expiry does to the running engine: virtual services stop accepting new
connections, established ones carry on, management stays up. Re-checked periodically and at the
exact expiry time, so an activation or an expiry takes effect without a restart."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path

import gevent

from passerelle.engine.manage.licence import LicenceError, LicenceState, licence_status

log = logging.getLogger("passerelle.licence")

RECHECK_ENV = "PASSERELLE_LICENCE_RECHECK"  # seconds between checks; tests shorten it
DEFAULT_RECHECK = 30.0


class LicenceEnforcer:
    def __init__(self, directory: Path, set_accepting: Callable[[bool], None]) -> None:
        self.directory = directory
        self.set_accepting = set_accepting
        self.interval = float(os.environ.get(RECHECK_ENV, DEFAULT_RECHECK))
        self.state: LicenceState | None = None

    def check(self) -> LicenceState | None:
        try:
            state = licence_status(self.directory)
        except (LicenceError, OSError) as exc:
            # An unreadable licence must not stop traffic that was allowed a moment ago.
            log.error("licence cannot be read: %s", exc)
            return self.state
        if self.state is None or state.kind != self.state.kind:
            log.warning("licence: %s; %s", state.kind, state.expiry_effect)
        self.state = state
        self.set_accepting(state.accepts_new_connections)
        return state

    def run(self) -> None:
        while True:
            state = self.check()
            wait = self.interval
            if state is not None and state.expires is not None:
                until = (state.expires - dt.datetime.now(dt.UTC)).total_seconds()
                if 0 < until < wait:
                    wait = until + 0.05  # wake just after the expiry itself
            gevent.sleep(wait)
