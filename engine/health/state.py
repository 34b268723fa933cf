"""Up/down decision of one real server from a stream of probe results (pure, no I/O)."""

from __future__ import annotations


class HealthState:
    """Hysteresis over probe results so one lost packet does not flap a real server.

    The first result decides at once: at start-up a server takes traffic only after one good
    check, and a dead one is never tried. After that, ``retries`` consecutive failures take an
    up server down and ``rise`` consecutive successes bring a down server back up.
    """

    __slots__ = ("_streak", "retries", "rise", "up")

    def __init__(self, retries: int, rise: int) -> None:
        if retries < 1 or rise < 1:
            raise ValueError("retries and rise must be at least 1")
        self.retries = retries
        self.rise = rise
        self.up: bool | None = None
        self._streak = 0  # consecutive results that disagree with `up`

    def record(self, success: bool) -> bool:
        """Account for one probe result; True when `up` changed (including the first result)."""
        success = bool(success)
        if self.up is None:
            self.up = success
            return True
        if success == self.up:
            self._streak = 0
            return False
        self._streak += 1
        if self._streak < (self.rise if success else self.retries):
            return False
        self.up = success
        self._streak = 0
        return True
