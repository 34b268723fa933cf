"""The demo licence: every feature for 30 days from the first boot."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

DEMO_DAYS = 30


@dataclass(frozen=True)
class LicenceState:
    kind: str
    start: dt.datetime
    expires: dt.datetime
    days_left: int
    expired: bool

    def describe(self) -> str:
        if self.expired:
            return f"{self.kind} licence expired on {self.expires:%Y-%m-%d}"
        days = "1 day" if self.days_left == 1 else f"{self.days_left} days"
        return f"{self.kind}, {days} left (until {self.expires:%Y-%m-%d})"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "start": _iso(self.start),
            "expires": _iso(self.expires),
            "days_left": self.days_left,
            "expired": self.expired,
        }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def demo_licence(first_boot: dt.datetime, now: dt.datetime) -> LicenceState:
    expires = first_boot + dt.timedelta(days=DEMO_DAYS)
    remaining = (expires - now).total_seconds()
    # a day begun counts as left; a clock set back before first boot gains nothing
    days_left = min(DEMO_DAYS, max(0, math.ceil(remaining / 86400)))
    return LicenceState("demo", first_boot, expires, days_left, remaining <= 0)
