"""Reading, checking and making X.509 certificates for TLS offload and re-encryption.

cryptography is imported by the functions that use it, not by this module: the management
plane imports this module at start, and cryptography's library then stays resident in the
engine's supervisor (~10 MB) although most engines never touch a certificate after start.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from passerelle.engine.model import Certificate

    PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096")
_CURVE_NAMES = {"secp256r1": "p256", "secp384r1": "p384", "secp521r1": "p521"}
# Issued certificates start an hour in the past so that a peer whose clock lags still accepts them.
_BACKDATE = dt.timedelta(hours=1)


class CertificateError(ValueError):
    """A certificate that cannot be used; ``field`` names the bad part of the model."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CertificateInfo:
    name: str
    subject_cn: str | None
    dns_names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str
    fingerprint_sha256: str
    self_signed: bool

    def expired(self, now: dt.datetime | None = None) -> bool:
        return (now or dt.datetime.now(dt.UTC)) > self.not_after


def inspect(cert: Certificate, *, require_key: bool = True) -> CertificateInfo:
    """Parse and check a configured certificate; raise CertificateError naming the bad field.

    ``require_key=False`` accepts an empty ``key_pem``: a CA certificate used only as a trust
    anchor for re-encryption has no private key here. A key that is present is always checked.
    """
    from cryptography.hazmat.primitives import hashes

    leaf = _load_leaf(cert.cert_pem)
    if cert.key_pem.strip() or require_key:
        _check_key_pair(cert.cert_pem, cert.key_pem)
    if cert.chain_pem.strip():
        _load_chain(cert.chain_pem)
    return CertificateInfo(
        name=cert.name,
        subject_cn=_common_name(leaf),
        dns_names=dns_names(leaf),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        key_type=key_type(leaf.public_key()),
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(":").upper(),
        self_signed=_self_signed(leaf),
    )


@functools.lru_cache(maxsize=256)
def _check_key_pair(cert_pem: str, key_pem: str) -> None:
    """Raise CertificateError unless the key is readable and matches the certificate.

    Remembered per pair (failures are not): loading an RSA key checks it, tens of
    milliseconds each time, and every configuration change validates every certificate.
    """
    key = _load_key(key_pem)
    if _public_der(key.public_key()) != _public_der(_load_leaf(cert_pem).public_key()):
        raise CertificateError("key_pem", "the private key does not match the certificate")


def leaf_dns_names(cert_pem: str) -> tuple[str, ...]:
    """The names a certificate answers SNI for, without loading its key (see dns_names)."""
    return dns_names(_load_leaf(cert_pem))


def dns_names(leaf: x509.Certificate) -> tuple[str, ...]:
    """SAN dNSNames lowercased; the subject CN only for a certificate without a SAN at all."""
    from cryptography import x509

    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cn = _common_name(leaf)
        return (cn.lower(),) if cn else ()
    return tuple(name.lower() for name in san.get_values_for_type(x509.DNSName))


def key_type(public_key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        return f"ecdsa-{_CURVE_NAMES.get(curve, curve)}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    return type(public_key).__name__.lower()


def make_self_signed(
    common_name: str, dns_names: list[str], *, key_type: str = "ecdsa-p256", days: int = 825
) -> tuple[str, str]:
    """A self-signed server certificate and its key as ``(cert_pem, key_pem)``.

    Entries of ``dns_names`` that are IP literals go into the SAN as IP addresses.
    """
    from cryptography import x509

    key = _new_key(key_type)
    subject = _name(common_name)
    builder = _leaf_builder(subject, subject, key, dns_names, (), days)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
    )
    return _pem(builder.sign(key, _digest(key))), _key_pem(key)


@dataclass
class Authority:
    """A throwaway certificate authority for demos and tests (internal-CA real servers)."""

    cert_pem: str
    key_pem: str

    @classmethod
    def create(cls, common_name: str = "Passerelle Test CA", *, days: int = 3650) -> Authority:
        from cryptography.hazmat.primitives import hashes

        key = _new_key("ecdsa-p256")
        subject = _name(common_name)
        cert = _builder(subject, subject, key, days, authority=True).sign(key, hashes.SHA256())
        return cls(cert_pem=_pem(cert), key_pem=_key_pem(key))

    def issue(
        self,
        common_name: str,
        dns_names: list[str],
        ip_addresses: Sequence[str] = (),
        *,
        key_type: str = "ecdsa-p256",
        days: int = 825,
    ) -> tuple[str, str]:
        """A server certificate signed by this authority, as ``(cert_pem, key_pem)``."""
        from cryptography import x509

        ca_cert = x509.load_pem_x509_certificate(self.cert_pem.encode())
        ca_key = _load_key(self.key_pem)
        key = _new_key(key_type)
        builder = _leaf_builder(
            _name(common_name), ca_cert.subject, key, dns_names, ip_addresses, days
        )
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        return _pem(builder.sign(ca_key, _digest(ca_key))), _key_pem(key)


def write_pem_files(
    directory: Path, name: str, cert_pem: str, key_pem: str, chain_pem: str = ""
) -> tuple[Path, Path]:
    """Write ``name.crt`` (certificate then chain) and ``name.key`` (mode 0600) atomically."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"{name!r} is not a usable file name")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    _write_atomically(cert_path, _join_pem(cert_pem, chain_pem), 0o644)
    _write_atomically(key_path, _join_pem(key_pem), 0o600)
    return cert_path, key_path


def _join_pem(*parts: str) -> str:
    return "".join(part.strip() + "\n" for part in parts if part.strip())


def _write_atomically(path: Path, text: str, mode: int) -> None:
    # The key must never exist, even briefly, with wider permissions than 0600.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load_leaf(cert_pem: str) -> x509.Certificate:
    from cryptography import x509

    if "-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise CertificateError("cert_pem", "no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        # cert_pem may carry its chain too; the first certificate is the server's own
        return x509.load_pem_x509_certificates(cert_pem.encode())[0]
    except ValueError as exc:
        raise CertificateError("cert_pem", f"unreadable PEM certificate: {exc}") from None


def _load_chain(chain_pem: str) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError as exc:
        raise CertificateError("chain_pem", f"unreadable PEM chain: {exc}") from None


def _load_key(key_pem: str) -> PrivateKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if not key_pem.strip():
        raise CertificateError("key_pem", "the private key is missing")
    if "ENCRYPTED" in key_pem:
        raise CertificateError(
            "key_pem", "the private key is encrypted; supply it without a passphrase"
        )
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise CertificateError(
            "key_pem", "the private key is encrypted; supply it without a passphrase"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError("key_pem", f"unreadable PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError("key_pem", "only RSA and ECDSA keys are supported")
    return key


def _public_der(public_key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _common_name(cert: x509.Certificate) -> str | None:
    from cryptography.x509.oid import NameOID

    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value.decode() if isinstance(value, bytes) else value


def _self_signed(cert: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _new_key(key_type: str) -> PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa-") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(f"key_type must be one of {', '.join(KEY_TYPES)}, not {key_type!r}")


def _digest(key: PrivateKey) -> hashes.HashAlgorithm:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _serial() -> int:
    return secrets.randbits(127) | 1  # positive, non-zero, under 20 octets


def _alt_names(dns_names: Iterable[str], ip_addresses: Iterable[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for entry in dns_names:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            names.append(x509.DNSName(entry.lower()))
    names.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses)
    return names


def _builder(
    subject: x509.Name, issuer: x509.Name, key: PrivateKey, days: int, *, authority: bool
) -> x509.CertificateBuilder:
    """What an authority and a server certificate share; only their usages differ."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=authority, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # RSA key exchange (backward-compatible ciphers) encrypts to a server's key
                key_encipherment=not authority and isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=authority,
                crl_sign=authority,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not authority:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)


def _leaf_builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: PrivateKey,
    dns_names: Iterable[str],
    ip_addresses: Iterable[str],
    days: int,
) -> x509.CertificateBuilder:
    from cryptography import x509

    builder = _builder(subject, issuer, key, days, authority=False)
    alt_names = _alt_names(dns_names, ip_addresses)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder


def _pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
