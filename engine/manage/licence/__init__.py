"""The licence: a 30-day demo from the first boot with every feature, or an activated licence
file signed by the vendor and bound to the appliance's serial number.

When a licence expires, virtual services stop accepting new connections; established ones and
the management plane keep working so that a licence can be activated. ``licence_status`` is
what the engine, the UI and the console read; ``activate`` checks and stores a licence file.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from passerelle.engine.manage.licence import clock
from passerelle.engine.manage.licence.signing import FEATURES, Licence, LicenceError, verify

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from passerelle.engine.manage.licence.start import demo_start, read_identity

__all__ = [
    "DEMO_DAYS",
    "FEATURES",
    "LICENCE_FILE",
    "LicenceError",
    "LicenceState",
    "activate",
    "licence_status",
]

DEMO_DAYS = 30
LICENCE_FILE = "licence.json"
# A licence stamped a little ahead of this appliance's clock is still taken (clock skew).
ISSUE_SKEW = dt.timedelta(days=1)


@dataclass(frozen=True)
class LicenceState:
    kind: str  # "demo" | "activated" | "expired" | "none"
    serial: str
    expires: dt.datetime | None
    days_left: int | None
    features: tuple[str, ...]
    expiry_effect: str  # shown before expiry: what happens when it expires
    started: dt.datetime | None = None  # the demo's start
    customer: str = ""
    note: str = ""  # how the state was reached, e.g. the demo clock's source

    @property
    def accepts_new_connections(self) -> bool:
        """What the data plane enforces: only an expired licence refuses new connections."""
        return self.kind != "expired"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "serial": self.serial,
            "expires": _iso(self.expires),
            "days_left": self.days_left,
            "features": list(self.features),
            "expiry_effect": self.expiry_effect,
            "started": _iso(self.started),
            "customer": self.customer,
            "note": self.note,
            "accepts_new_connections": self.accepts_new_connections,
        }


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def _days_left(expires: dt.datetime, now: dt.datetime) -> int:
    # a day begun counts as left, as on the console
    return max(0, math.ceil((expires - now).total_seconds() / 86400))


def _effect(kind: str, expires: dt.datetime | None, days: int | None) -> str:
    keeps = (
        "connections already established carry on, and the management UI, API and console "
        "keep working so that a licence can be activated, which restores service at once"
    )
    if expires is None:
        return (
            "No licence applies yet: the 30-day demo starts with the appliance's first boot. "
            f"When a licence expires, virtual services stop accepting new connections; {keeps}."
        )
    date = f"{expires:%Y-%m-%d %H:%M} UTC"
    if kind == "expired":
        return (
            f"The licence expired on {date}: virtual services accept no new connections; {keeps}."
        )
    when = "in 1 day" if days == 1 else f"in {days} days"
    return (
        f"When this {'demo ' if kind == 'demo' else ''}licence expires on {date} ({when}), "
        f"virtual services stop accepting new connections; {keeps}."
    )


def _activated(licence: Licence, now: dt.datetime) -> LicenceState:
    expired = licence.expires <= now
    kind = "expired" if expired else "activated"
    return LicenceState(
        kind=kind,
        serial=licence.serial,
        expires=licence.expires,
        days_left=_days_left(licence.expires, now),
        features=() if expired else licence.features,
        expiry_effect=_effect(kind, licence.expires, _days_left(licence.expires, now)),
        customer=licence.customer,
        note="activated licence" + (" (expired)" if expired else ""),
    )


def _stored_licence(
    directory: Path, serial: str, key: Ed25519PublicKey | None
) -> tuple[Licence | None, str]:
    path = directory / LICENCE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, ""
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"the stored licence cannot be read ({exc}); the demo terms apply"
    try:
        licence = verify(text, key)
    except LicenceError as exc:
        return None, f"the stored licence is not valid ({exc}); the demo terms apply"
    if licence.serial != serial:
        return None, f"the stored licence is for serial {licence.serial}; the demo terms apply"
    return licence, ""


def licence_status(
    directory: Path,
    now: dt.datetime | None = None,
    *,
    public_key: Ed25519PublicKey | None = None,
) -> LicenceState:
    """The licence of the appliance whose state lives in ``directory`` (/var/lib/passerelle).

    ``now`` defaults to $PASSERELLE_LICENCE_NOW, else the real time. Without identity.json the
    demo clock starts at the configuration store's creation (and the note says so).
    """
    moment = clock.now(now)
    identity = read_identity(directory)
    serial = identity.serial if identity else ""
    note = ""
    if identity is not None:
        licence, note = _stored_licence(directory, serial, public_key)
        if licence is not None:
            return _activated(licence, moment)
    start = demo_start(directory, identity)
    if start is None:
        return LicenceState(
            kind="none",
            serial=serial,
            expires=None,
            days_left=None,
            features=(),
            expiry_effect=_effect("none", None, None),
            note=note or "no identity.json and no configuration store in this folder",
        )
    expires = start.moment + dt.timedelta(days=DEMO_DAYS)
    expired = expires <= moment
    kind = "expired" if expired else "demo"
    # a clock set back before the start gains nothing
    days_left = min(DEMO_DAYS, _days_left(expires, moment))
    source = (
        "the demo started at the first boot"
        if start.source == "first-boot"
        else "no identity.json (not a first-booted appliance): the demo clock started when "
        "the configuration store was created"
    )
    return LicenceState(
        kind=kind,
        serial=serial,
        expires=expires,
        days_left=days_left,
        features=() if expired else FEATURES,
        expiry_effect=_effect(kind, expires, days_left),
        started=start.moment,
        note="; ".join(part for part in (source, note) if part),
    )


def activate(
    directory: Path,
    licence_text: str,
    now: dt.datetime | None = None,
    *,
    public_key: Ed25519PublicKey | None = None,
) -> LicenceState:
    """Check a licence file and make it this appliance's licence; LicenceError says why not.

    Refused: a signature that is not the vendor's (altered or forged), another serial, an
    expiry in the past, an issue date in the future. Nothing is stored unless all hold.
    """
    moment = clock.now(now)
    licence = verify(licence_text, public_key)
    identity = read_identity(directory)
    if identity is None:
        raise LicenceError(
            f"this appliance has no serial number ({directory / 'identity.json'} is missing); "
            "licences are bound to the serial that the first boot creates",
            "payload.serial",
        )
    if licence.serial != identity.serial:
        raise LicenceError(
            f"this licence is for serial {licence.serial}, but this appliance is "
            f"{identity.serial}; ask the vendor for a licence for {identity.serial}",
            "payload.serial",
        )
    if licence.expires <= moment:
        raise LicenceError(
            f"this licence expired on {licence.expires:%Y-%m-%d %H:%M} UTC", "payload.expires"
        )
    if licence.issued > moment + ISSUE_SKEW:
        raise LicenceError(
            f"this licence is dated {licence.issued:%Y-%m-%d}, in the future; check the "
            "appliance's clock",
            "payload.issued",
        )
    _write(directory / LICENCE_FILE, licence_text)
    return _activated(licence, moment)


def _write(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".licence-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
