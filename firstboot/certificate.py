"""The self-signed certificate the management web UI and API serve until one is uploaded."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from passerelle.engine.tls.certificates import make_self_signed, write_pem_files
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.validate import IPAddress


def make_management_certificate(paths: Paths, hostname: str, address: IPAddress) -> str:
    cert_pem, key_pem = make_self_signed(hostname, [hostname, str(address)])
    write_pem_files(paths.tls_dir, "management", cert_pem, key_pem)
    return fingerprint(paths.management_cert) or ""


def ensure_management_certificate(paths: Paths, hostname: str, address: IPAddress) -> bool:
    """Make the certificate unless a readable one is there; True when it was made."""
    if paths.management_key.exists() and fingerprint(paths.management_cert):
        return False
    make_management_certificate(paths, hostname, address)
    return True


def fingerprint(path: Path) -> str | None:
    """SHA-256 of the certificate as colon-separated hex, the form browsers show."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()
