"""Certificate inspection, generation and files, checked against OpenSSL itself."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from passerelle.engine.model import Certificate
from passerelle.engine.tls.certificates import (
    Authority,
    CertificateError,
    inspect,
    make_self_signed,
    write_pem_files,
)


def cert(cert_pem: str, key_pem: str, chain_pem: str = "", name: str = "c") -> Certificate:
    return Certificate(name=name, cert_pem=cert_pem, key_pem=key_pem, chain_pem=chain_pem)


def openssl(*args: str, stdin: str = "") -> str:
    proc = subprocess.run(
        ["openssl", *args], input=stdin, capture_output=True, text=True, timeout=5
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def ecdsa_pair() -> tuple[str, str]:
    return make_self_signed(
        "www.example.com", ["www.example.com", "Example.COM", "*.Example.com", "192.0.2.10"]
    )


def test_san_names_read_lowercased_with_wildcards(ecdsa_pair: tuple[str, str]) -> None:
    info = inspect(cert(*ecdsa_pair, name="site"))
    assert info.name == "site"
    assert info.subject_cn == "www.example.com"
    assert info.dns_names == ("www.example.com", "example.com", "*.example.com")
    assert info.key_type == "ecdsa-p256"
    assert info.self_signed
    assert info.not_after - info.not_before == dt.timedelta(days=825, hours=1)
    assert not info.expired()
    # the IP literal went into the SAN as an address, which OpenSSL reads as such
    text = openssl("x509", "-noout", "-ext", "subjectAltName", stdin=ecdsa_pair[0])
    assert "IP Address:192.0.2.10" in text
    assert "DNS:*.example.com" in text


def test_fingerprint_matches_openssl(ecdsa_pair: tuple[str, str]) -> None:
    out = openssl("x509", "-noout", "-fingerprint", "-sha256", stdin=ecdsa_pair[0])
    assert out.strip().split("=", 1)[1] == inspect(cert(*ecdsa_pair)).fingerprint_sha256


def test_rsa_self_signed() -> None:
    info = inspect(cert(*make_self_signed("rsa.example", ["rsa.example"], key_type="rsa-2048")))
    assert (info.key_type, info.dns_names) == ("rsa-2048", ("rsa.example",))


def test_unknown_key_type_refused() -> None:
    with pytest.raises(ValueError, match="key_type"):
        make_self_signed("x", ["x"], key_type="dsa-1024")


def test_common_name_only_without_san() -> None:
    info = inspect(cert(*make_self_signed("Legacy.Example", [])))
    assert info.dns_names == ("legacy.example",)


def test_no_common_name_fallback_when_san_has_only_addresses() -> None:
    info = inspect(cert(*make_self_signed("named.example", ["10.1.1.1"])))
    assert info.dns_names == ()
    assert info.subject_cn == "named.example"


def test_authority_issues_what_openssl_verifies(tmp_path: Path) -> None:
    ca = Authority.create("Test CA")
    leaf_pem, key_pem = ca.issue(
        "api.internal", ["api.internal"], ["127.0.0.1"], key_type="rsa-2048"
    )
    (tmp_path / "ca.pem").write_text(ca.cert_pem)
    (tmp_path / "leaf.pem").write_text(leaf_pem)
    out = openssl(
        "verify", "-purpose", "sslserver", "-CAfile", str(tmp_path / "ca.pem"),
        "-verify_hostname", "api.internal", "-verify_ip", "127.0.0.1", str(tmp_path / "leaf.pem"),
    )  # fmt: skip
    assert out.strip().endswith(": OK")
    info = inspect(cert(leaf_pem, key_pem, chain_pem=ca.cert_pem))
    assert not info.self_signed
    assert info.key_type == "rsa-2048"
    ca_info = inspect(cert(ca.cert_pem, ca.key_pem))
    assert ca_info.self_signed
    assert ca_info.subject_cn == "Test CA"


def test_garbage_certificate_refused() -> None:
    _, key = make_self_signed("x", ["x"])
    for garbage in (
        "hello",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    ):
        with pytest.raises(CertificateError) as caught:
            inspect(cert(garbage, key))
        assert caught.value.field == "cert_pem"
        assert isinstance(caught.value, ValueError)


def test_mismatched_key_refused(ecdsa_pair: tuple[str, str]) -> None:
    _, other_key = make_self_signed("x", ["x"])
    with pytest.raises(CertificateError, match="does not match") as caught:
        inspect(cert(ecdsa_pair[0], other_key))
    assert caught.value.field == "key_pem"


def test_key_of_another_type_refused(ecdsa_pair: tuple[str, str]) -> None:
    _, rsa_key = make_self_signed("x", ["x"], key_type="rsa-2048")
    with pytest.raises(CertificateError, match="does not match") as caught:
        inspect(cert(ecdsa_pair[0], rsa_key))
    assert caught.value.field == "key_pem"


def test_encrypted_key_refused(ecdsa_pair: tuple[str, str]) -> None:
    key = serialization.load_pem_private_key(ecdsa_pair[1].encode(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ).decode()
    with pytest.raises(CertificateError, match="encrypted") as caught:
        inspect(cert(ecdsa_pair[0], encrypted))
    assert caught.value.field == "key_pem"


@pytest.mark.parametrize(
    "key_pem", ["", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_missing_or_garbage_key_refused(ecdsa_pair: tuple[str, str], key_pem: str) -> None:
    with pytest.raises(CertificateError) as caught:
        inspect(cert(ecdsa_pair[0], key_pem))
    assert caught.value.field == "key_pem"


def test_trust_anchor_without_key() -> None:
    ca = Authority.create()
    assert inspect(cert(ca.cert_pem, ""), require_key=False).subject_cn == "Passerelle Test CA"


def test_garbage_chain_refused(ecdsa_pair: tuple[str, str]) -> None:
    chain = "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"
    with pytest.raises(CertificateError) as caught:
        inspect(cert(*ecdsa_pair, chain_pem=chain))
    assert caught.value.field == "chain_pem"


def test_certificate_with_its_chain_appended_reads_the_leaf() -> None:
    ca = Authority.create()
    leaf, key = ca.issue("leaf.example", ["leaf.example"])
    info = inspect(cert(leaf + ca.cert_pem, key))
    assert info.subject_cn == "leaf.example"


def test_expired_certificate_reported() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example")])
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    old = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(past)
        .not_valid_after(past + dt.timedelta(days=30))
        .sign(key, hashes.SHA384())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = inspect(cert(old.public_bytes(serialization.Encoding.PEM).decode(), key_pem))
    assert info.expired()
    assert info.key_type == "ecdsa-p384"
    assert info.not_after == past + dt.timedelta(days=30)


def test_write_pem_files(tmp_path: Path) -> None:
    ca = Authority.create()
    leaf, key = ca.issue("files.example", ["files.example"])
    cert_path, key_path = write_pem_files(tmp_path / "certs", "files", leaf, key, ca.cert_pem)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert cert_path.read_text().count("BEGIN CERTIFICATE") == 2
    assert key_path.read_text() == key
    # OpenSSL itself accepts the pair
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
    # rewriting replaces atomically and leaves no temporary files behind
    write_pem_files(tmp_path / "certs", "files", leaf, key)
    assert cert_path.read_text().count("BEGIN CERTIFICATE") == 1
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == ["files.crt", "files.key"]


@pytest.mark.parametrize("name", ["", "../evil", ".hidden"])
def test_write_pem_files_refuses_path_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        write_pem_files(tmp_path, name, "x", "y")
