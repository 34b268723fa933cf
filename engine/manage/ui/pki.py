"""Turning what administrators bring into PEM: PKCS#12 bundles, and keys kept for a CSR.

A CSR's private key never leaves the appliance: it is kept (0600) in ``csr/`` beside the store
until the signed certificate comes back, then stored with it as one certificate.

cryptography is imported where a bundle or a request is made: listing pending requests (every
certificates page) must not keep its library resident in the engine (see tls/certificates.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

CSR_FOLDER = "csr"
KEY_TYPES = ("rsa-2048", "rsa-3072", "ecdsa-p256", "ecdsa-p384")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class BundleError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PemParts:
    cert_pem: str
    key_pem: str
    chain_pem: str


def _pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: object) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def from_pkcs12(data: bytes, password: str) -> PemParts:
    """Certificate, key and chain of a PFX/PKCS#12 file; BundleError naming the form field."""
    if not data:
        raise BundleError("pfx", "choose a .pfx or .p12 file")
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, cert, chain = pkcs12.load_key_and_certificates(
            data, password.encode("utf-8") if password else None
        )
    except ValueError:
        raise BundleError("password", "wrong password, or not a PKCS#12 file") from None
    if cert is None or key is None:
        raise BundleError("pfx", "the file must hold a certificate and its private key")
    return PemParts(_pem(cert), _key_pem(key), "".join(_pem(c) for c in chain or ()))


def _new_key(key_type: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise BundleError("key_type", f"must be one of {', '.join(KEY_TYPES)}")


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def create_csr(
    directory: Path, name: str, common_name: str, names: list[str], key_type: str
) -> str:
    """A CSR (PEM) for ``common_name`` plus ``names``; its key is kept under ``name``."""
    if not NAME.fullmatch(name):
        raise BundleError("name", "letters, digits, _ . - only, at most 64 characters")
    if not common_name.strip():
        raise BundleError("common_name", "is required")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = _new_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name.strip())])
    wanted = [common_name.strip(), *[n for n in names if n != common_name.strip()]]
    try:
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
        builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(wanted)), False)
        csr = builder.sign(key, hashes.SHA256())
    except ValueError as exc:
        raise BundleError("names", str(exc)) from None
    folder = directory / CSR_FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    descriptor = os.open(folder / f"{name}.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(_key_pem(key))
    csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode("ascii")
    (folder / f"{name}.csr").write_text(csr_pem, encoding="ascii")
    return csr_pem


@dataclass(frozen=True)
class PendingRequest:
    name: str
    csr_pem: str


def pending(directory: Path) -> list[PendingRequest]:
    folder = directory / CSR_FOLDER
    found = []
    for path in sorted(folder.glob("*.csr")) if folder.is_dir() else []:
        if path.with_suffix(".key").exists():
            found.append(PendingRequest(path.stem, path.read_text(encoding="ascii")))
    return found


def kept_key(directory: Path, name: str) -> str:
    if not NAME.fullmatch(name):
        raise BundleError("name", "no such request")
    try:
        return (directory / CSR_FOLDER / f"{name}.key").read_text(encoding="ascii")
    except OSError:
        raise BundleError("name", f"no pending request named {name!r}") from None


def forget(directory: Path, name: str) -> None:
    if NAME.fullmatch(name):
        for suffix in (".key", ".csr"):
            (directory / CSR_FOLDER / f"{name}{suffix}").unlink(missing_ok=True)
