"""What a booted appliance must prove: its first boot happened as specified, and it serves.

Expected values come from the metadata handed to first boot (or its defaults), read with first
boot's own code, so the boot test and the appliance cannot disagree on what a file means.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from passerelle.firstboot.announce import parse_announcement
from passerelle.firstboot.choose import choose
from passerelle.firstboot.licence import DEMO_DAYS
from passerelle.firstboot.metadata import SourceError, normalise
from passerelle.firstboot.sources.jsonfile import read_json_metadata
from passerelle.image.appliance_client import (
    ApplianceAnswerError,
    ApplianceClient,
    fingerprint_sha256,
    http_get,
)

ADMIN_USER = "admin"
SERIAL_PATTERN = re.compile(r"PSL-[A-Z2-7]{12}")
SERVICE_NAME = "boot-test"
SERVICE_PORT = 8080
# The engine's admin listener (GET /stats) only listens on the guest's loopback: an answer from
# it on the appliance address can only have come through the virtual service.
INNER_SERVER = ("127.0.0.1", 9900)


class CheckFailed(Exception):
    """The appliance booted but a fact does not hold."""


@dataclass(frozen=True)
class Expected:
    address: str
    hostname: str
    admin_password: str | None  # None: generated at first boot, read off the serial console


def expected_from(metadata: Path | None) -> Expected:
    """What first boot will apply given ``metadata`` (None: the image's defaults).

    A value first boot would refuse (and replace by its default) is an error here, before
    any boot: the user meant the value, not the default."""
    raw: dict[str, object] | None = None
    if metadata is not None:
        try:
            raw = read_json_metadata(metadata)
        except SourceError as exc:
            raise CheckFailed(str(exc)) from None
        if raw is None:
            raise CheckFailed(f"{metadata}: empty or missing")
    settings = normalise(raw, "metadata") if raw else None
    if settings is not None and not settings.values:
        raise CheckFailed(
            f"{metadata}: none of the keys ip, netmask, gateway, dns, hostname, admin_password"
        )
    choice = choose(settings)
    if choice.notes:
        raise CheckFailed("; ".join(choice.notes))
    return Expected(str(choice.settings.address.ip), choice.hostname, choice.admin_password)


@dataclass(frozen=True)
class CertificateFacts:
    sha256: str
    subject_cn: str
    names: tuple[str, ...]  # subjectAltName: DNS names and IP addresses as text


def check_certificate(der: bytes, expected: Expected, announced: str | None) -> CertificateFacts:
    """The served certificate is first boot's: self-signed, naming the appliance's hostname and
    address, and (when first boot's serial console summary was read) the one it announced."""
    cert = x509.load_der_x509_certificate(der)
    sha256 = fingerprint_sha256(der)
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CheckFailed("the management certificate has no subjectAltName") from None
    names = (*san.get_values_for_type(x509.DNSName),)
    addresses = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    if cert.issuer != cert.subject:
        raise CheckFailed(f"the management certificate is issued by {cert.issuer.rfc4514_string()}")
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CheckFailed("the management certificate's key is not the ECDSA key first boot makes")
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError) as exc:
        raise CheckFailed(f"the management certificate is not self-signed: {exc}") from None
    if cn != expected.hostname or expected.hostname not in names:
        raise CheckFailed(
            f"the management certificate names {cn!r} / {names}, not the hostname "
            f"{expected.hostname!r}"
        )
    if ipaddress.ip_address(expected.address) not in {ipaddress.ip_address(a) for a in addresses}:
        raise CheckFailed(
            f"the management certificate names {addresses}, not the address {expected.address}"
        )
    if announced is not None and announced != sha256:
        raise CheckFailed(
            f"the served certificate {sha256} is not the one first boot made ({announced})"
        )
    return CertificateFacts(sha256, cn, (*names, *addresses))


@dataclass(frozen=True)
class FirstBootFacts:
    serial: str
    hostname: str
    address: str
    licence_kind: str
    licence_days_left: int


def check_first_boot_facts(
    client: ApplianceClient, expected: Expected, announced: dict[str, str]
) -> FirstBootFacts:
    """Serial, hostname and address through the API; the licence is a fresh 30-day demo."""
    system = client.get_json("/api/v1/system")
    serial = str(system.get("serial") or "")
    if not SERIAL_PATTERN.fullmatch(serial):
        raise CheckFailed(f"the API reports serial {serial!r}, not PSL- and 12 base32 characters")
    if "serial" in announced and announced["serial"] != serial:
        raise CheckFailed(f"serial {serial} in the API, {announced['serial']} at first boot")
    if system.get("hostname") != expected.hostname:
        raise CheckFailed(f"hostname {system.get('hostname')!r}, expected {expected.hostname!r}")
    address = str(_get(system, "network", "address")).split("/")[0]
    if address != expected.address:
        raise CheckFailed(f"management address {address}, expected {expected.address}")
    # The wheel carries the request path compiled for Debian's Python: it must load there.
    if system.get("request_path") != "compiled":
        raise CheckFailed(f"the engine runs its request path {system.get('request_path')!r}")
    licence = client.get_json("/api/v1/licence")
    kind, days = licence.get("kind"), licence.get("days_left")
    # A boot takes minutes, not a day: anything below 29 means the clock started earlier.
    if kind != "demo" or not isinstance(days, int) or not DEMO_DAYS - 1 <= days <= DEMO_DAYS:
        raise CheckFailed(f"licence {kind!r} with {days} days left, expected a new demo licence")
    if licence.get("serial") != serial or licence.get("accepts_new_connections") is not True:
        raise CheckFailed(f"licence {json.dumps(licence)} does not serve serial {serial}")
    return FirstBootFacts(serial, str(system["hostname"]), address, kind, days)


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            raise CheckFailed(f"no {'.'.join(keys)} in {json.dumps(data)[:200]}")
        data = data[key]
    return data


def service_definition(address: str) -> dict[str, object]:
    host, port = INNER_SERVER
    return {
        "name": SERVICE_NAME,
        "address": address,
        "ports": [SERVICE_PORT],
        "mode": "http",
        "real_servers": [{"address": host, "port": port}],
        "health_check": {
            "type": "http",
            "path": "/healthz",
            "expected_status": [200],
            "interval": 1.0,
            "timeout": 1.0,
            "rise": 1,
        },
    }


def check_virtual_service(
    client: ApplianceClient, forward_port: int, address: str, timeout: float
) -> float:
    """Creates a virtual service on the appliance address through the API, then fetches through
    it from the host; seconds from the creation to the proxied answer."""
    created = client.request("POST", "/api/v1/virtual-services", service_definition(address))
    if created.status != 201:
        raise CheckFailed(
            f"creating the virtual service answered {created.status}: {created.body[:300]!r}"
        )
    started = time.monotonic()
    problem = "no answer"
    while time.monotonic() - started < timeout:
        try:
            answer = http_get(forward_port, f"{address}:{SERVICE_PORT}", "/stats", timeout=5.0)
        except OSError as exc:
            problem = str(exc) or type(exc).__name__
        else:
            if answer.status == 200 and _lists_service(answer):
                return time.monotonic() - started
            problem = f"GET /stats answered {answer.status}: {answer.body[:120]!r}"
        time.sleep(0.5)
    raise CheckFailed(f"no answer through virtual service {SERVICE_NAME} ({problem})")


def _lists_service(answer: Any) -> bool:
    try:
        rows = answer.json()
    except ApplianceAnswerError:
        return False
    host, port = INNER_SERVER
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("name") == SERVICE_NAME:
            servers = row.get("real_servers") or []
            return any(isinstance(s, dict) and s.get("server") == f"{host}:{port}" for s in servers)
    return False


def announced_facts(console_log: Path) -> dict[str, str]:
    """First boot's summary from the serial console log so far (empty before it is written)."""
    try:
        return parse_announcement(console_log.read_text(errors="replace"))
    except OSError:
        return {}
