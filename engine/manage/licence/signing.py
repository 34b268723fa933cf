"""Signed licence files: a JSON payload and an Ed25519 signature by the vendor's key.

The appliance holds only the vendor's public key (``vendor_public_key.pem`` in this package);
the private key stays with the vendor, outside the repository. The signature covers a domain
tag and the payload's canonical JSON, so re-formatting the file keeps it valid while changing
any value breaks it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

# cryptography is imported where keys are used: the engine loads this module at start whether or
# not a licence file exists, and its workers are forked from that memory.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


PUBLIC_KEY_ENV = "PASSERELLE_LICENCE_PUBLIC_KEY"  # a PEM file, or the PEM itself (tests)
PUBLIC_KEY_FILE = "vendor_public_key.pem"
DOMAIN = b"passerelle-licence-v1\0"
FEATURES = (
    "load-balancing",
    "l7-proxy",
    "tls",
    "content-switching",
    "high-availability",
    "templates",
    "compliance-advisor",
)
MAX_LICENCE_BYTES = 64 * 1024


class LicenceError(ValueError):
    """A licence that cannot be used; the message says why and what to do, ``field`` names the
    part of the licence file at fault ('' for the file as a whole)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Licence:
    serial: str
    customer: str
    features: tuple[str, ...]
    issued: dt.datetime
    expires: dt.datetime


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def public_key(explicit: Ed25519PublicKey | None = None) -> Ed25519PublicKey:
    """The key licences are checked with: explicit, else $PASSERELLE_LICENCE_PUBLIC_KEY, else
    the vendor key shipped in the package."""
    if explicit is not None:
        return explicit
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    override = os.environ.get(PUBLIC_KEY_ENV, "").strip()
    if override:
        pem = (
            override.encode() if override.startswith("-----BEGIN") else Path(override).read_bytes()
        )
    else:
        pem = resources.files(__package__).joinpath(PUBLIC_KEY_FILE).read_bytes()
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise LicenceError("the licence public key is not an Ed25519 key")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise LicenceError(f"cannot read the private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenceError(f"{path} is not an Ed25519 private key")
    return key


def new_key_pair() -> tuple[str, str]:
    """A fresh (private PEM, public PEM) pair, for the vendor's key or for tests."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def issue(
    key: Ed25519PrivateKey,
    serial: str,
    expires: dt.datetime,
    features: tuple[str, ...] = FEATURES,
    customer: str = "",
    issued: dt.datetime | None = None,
) -> str:
    """The text of a licence file (vendor side)."""
    payload = {
        "serial": serial,
        "customer": customer,
        "features": list(features),
        "issued": iso(issued or dt.datetime.now(dt.UTC)),
        "expires": iso(expires),
    }
    signature = key.sign(DOMAIN + _canonical(payload))
    document = {"payload": payload, "signature": base64.b64encode(signature).decode()}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _time(payload: dict[str, Any], name: str) -> dt.datetime:
    value = payload.get(name)
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise LicenceError(
            f"the licence's {name} time {value!r} is not an ISO 8601 time", f"payload.{name}"
        ) from None
    if moment.tzinfo is None:
        raise LicenceError(
            f"the licence's {name} time must carry a time zone (e.g. Z)", f"payload.{name}"
        )
    return moment.astimezone(dt.UTC)


def verify(text: str, key: Ed25519PublicKey | None = None) -> Licence:
    """The licence in ``text`` if its signature is the vendor's; LicenceError otherwise."""
    if len(text.encode("utf-8", "replace")) > MAX_LICENCE_BYTES:
        raise LicenceError("this is not a licence file: it is far too large")
    try:
        document = json.loads(text)
    except ValueError:
        raise LicenceError("this is not a licence file: it is not JSON") from None
    if not isinstance(document, dict) or set(document) != {"payload", "signature"}:
        raise LicenceError("this is not a licence file: it needs exactly payload and signature")
    payload, signature = document["payload"], document["signature"]
    if not isinstance(payload, dict) or not isinstance(signature, str):
        raise LicenceError("this is not a licence file: payload must be an object")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise LicenceError("the licence's signature is not base64", "signature") from None
    from cryptography.exceptions import InvalidSignature

    try:
        public_key(key).verify(raw, DOMAIN + _canonical(payload))
    except InvalidSignature:
        raise LicenceError(
            "the licence's signature does not match: the file was altered or was not issued "
            "by the vendor; ask the vendor for the original file",
            "signature",
        ) from None
    features = payload.get("features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise LicenceError("the licence's features must be a list of names", "payload.features")
    return Licence(
        serial=str(payload.get("serial", "")),
        customer=str(payload.get("customer", "")),
        features=tuple(features),
        issued=_time(payload, "issued"),
        expires=_time(payload, "expires"),
    )
