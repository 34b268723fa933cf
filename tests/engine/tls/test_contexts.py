"""Offload and re-encryption contexts, exercised by real handshakes on loopback."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys

import gevent
import gevent.socket
import gevent.ssl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from passerelle.engine.model import Certificate, TLSOffload, TLSReencrypt
from passerelle.engine.tls.certificates import Authority, leaf_dns_names, make_self_signed
from passerelle.engine.tls.contexts import (
    CIPHER_SETS,
    chosen_certificate,
    client_context,
    server_context,
    server_hostname_for,
    server_name,
    sni_for,
    sni_names,
)

LEGACY_CLIENT = ("-cipher", "DEFAULT:@SECLEVEL=0")  # lets the openssl CLI offer TLS 1.0/1.1


def offload_server(tls_server, cert: Certificate, **offload):  # type: ignore[no-untyped-def]
    ctx = server_context(TLSOffload(certificates=[cert.name], **offload), {cert.name: cert})
    return tls_server(ctx)


# --- protocol versions -------------------------------------------------------------------------


def test_default_refuses_tls_1_1_and_accepts_1_2_and_1_3(  # type: ignore[no-untyped-def]
    tls_server, s_client, rsa_certificate
) -> None:
    server = offload_server(tls_server, rsa_certificate)
    refused = s_client(server.port, "-tls1_1", *LEGACY_CLIENT)
    assert not refused.connected
    assert not server.next_handshake().ok
    for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        result = s_client(server.port, flag)
        assert result.connected, result.output
        assert server.next_handshake().version == version


def test_backward_compatible_really_allows_tls_1_0_and_1_1(  # type: ignore[no-untyped-def]
    tls_server, s_client, rsa_certificate
) -> None:
    server = offload_server(
        tls_server, rsa_certificate, cipher_set="backward-compatible", min_version="TLS1.0"
    )
    for flag, version in (("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1"), ("-tls1_3", "TLSv1.3")):
        result = s_client(server.port, flag, *LEGACY_CLIENT)
        assert result.connected, result.output
        assert server.next_handshake().version == version


def test_tls_1_1_minimum_still_refuses_tls_1_0(  # type: ignore[no-untyped-def]
    tls_server, s_client, rsa_certificate
) -> None:
    server = offload_server(
        tls_server, rsa_certificate, cipher_set="backward-compatible", min_version="TLS1.1"
    )
    assert not s_client(server.port, "-tls1", *LEGACY_CLIENT).connected
    server.next_handshake()
    assert s_client(server.port, "-tls1_1", *LEGACY_CLIENT).connected


def test_modern_is_tls_1_3_only(tls_server, s_client, rsa_certificate) -> None:  # type: ignore[no-untyped-def]
    server = offload_server(tls_server, rsa_certificate, cipher_set="modern", min_version="TLS1.0")
    assert not s_client(server.port, "-tls1_2").connected
    assert not server.next_handshake().ok
    result = s_client(server.port, "-tls1_3")
    assert result.connected
    assert result.version == "TLSv1.3"


# --- cipher sets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cipher_set", "cipher", "accepted"),
    [
        ("best-practices", "AES128-SHA", False),  # RSA key exchange, CBC
        ("best-practices", "ECDHE-RSA-AES128-SHA", False),  # forward secret but CBC
        ("best-practices", "DHE-RSA-AES128-GCM-SHA256", False),
        ("best-practices", "ECDHE-RSA-AES128-GCM-SHA256", True),
        ("best-practices", "ECDHE-RSA-CHACHA20-POLY1305", True),
        ("intermediate", "DHE-RSA-AES128-GCM-SHA256", True),  # needs the DH group loaded
        ("intermediate", "AES128-SHA", False),
        ("backward-compatible", "AES128-SHA", True),
        ("backward-compatible", "ECDHE-RSA-AES256-SHA", True),
    ],
)
def test_tls_1_2_cipher_sets(  # type: ignore[no-untyped-def]
    tls_server, s_client, rsa_certificate, cipher_set, cipher, accepted
) -> None:
    server = offload_server(tls_server, rsa_certificate, cipher_set=cipher_set)
    result = s_client(server.port, "-tls1_2", "-cipher", cipher)
    assert result.connected is accepted, result.output
    seen = server.next_handshake()
    assert seen.ok is accepted
    if accepted:
        assert seen.cipher == cipher


@pytest.mark.parametrize("cipher_set", sorted(CIPHER_SETS))
def test_no_cipher_set_offers_broken_ciphers(cipher_set: str, rsa_certificate) -> None:  # type: ignore[no-untyped-def]
    offload = TLSOffload(certificates=["legacy"], cipher_set=cipher_set, min_version="TLS1.0")
    ctx = server_context(offload, {"legacy": rsa_certificate})
    names = [c["name"] for c in ctx.get_ciphers()]
    assert names
    for bad in ("RC4", "DES-CBC3", "NULL", "EXP", "MD5", "PSK", "ADH", "AECDH"):
        assert not [n for n in names if bad in n], (bad, names)
    if cipher_set == "best-practices":
        tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert all(c["aead"] and c["kea"] == "kx-ecdhe" for c in tls12)


def test_cipher_server_preference_and_no_compression(rsa_certificate) -> None:  # type: ignore[no-untyped-def]
    ctx = server_context(TLSOffload(certificates=["legacy"]), {"legacy": rsa_certificate})
    assert ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert ctx.options & ssl.OP_NO_COMPRESSION
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3


# --- ALPN and chain ----------------------------------------------------------------------------


def test_alpn_offers_only_http_1_1(tls_server, s_client, rsa_certificate) -> None:  # type: ignore[no-untyped-def]
    server = offload_server(tls_server, rsa_certificate)
    assert s_client(server.port, "-alpn", "h2,http/1.1").alpn == "http/1.1"
    assert server.next_handshake().alpn == "http/1.1"
    only_h2 = s_client(server.port, "-alpn", "h2")
    assert only_h2.connected and only_h2.alpn is None  # no h2, and no handshake failure
    assert server.next_handshake().alpn is None


def test_one_certificate_without_a_use_for_the_name_skips_the_callback(  # type: ignore[no-untyped-def]
    tls_server, s_client, rsa_certificate
) -> None:
    offload = TLSOffload(certificates=[rsa_certificate.name])
    certificates = {rsa_certificate.name: rsa_certificate}
    ctx = server_context(offload, certificates, record_server_name=False)
    assert ctx.sni_callback is None
    server = tls_server(ctx)
    assert s_client(server.port, servername="www.example.test").connected
    seen = server.next_handshake()
    assert (seen.ok, seen.certificate, seen.server_name) == (True, rsa_certificate.name, None)
    # by default the name is recorded, for rules and L4 re-encryption
    server = tls_server(server_context(offload, certificates))
    assert s_client(server.port, servername="www.example.test").connected
    assert server.next_handshake().server_name == "www.example.test"


def test_chain_is_served_after_the_leaf(  # type: ignore[no-untyped-def]
    tls_server, s_client, authority: Authority, ca_file
) -> None:
    cert_pem, key_pem = authority.issue("chained.contoso.com", ["chained.contoso.com"])
    cert = Certificate(
        name="chained", cert_pem=cert_pem, key_pem=key_pem, chain_pem=authority.cert_pem
    )
    server = offload_server(tls_server, cert)
    result = s_client(server.port, "-verify_return_error", "-CAfile", str(ca_file))
    assert result.connected, result.output
    assert [c.subject.rfc4514_string() for c in result.certificates] == [
        "CN=chained.contoso.com",
        "CN=Contoso Test CA",
    ]
    assert "Verify return code: 0 (ok)" in result.output


# --- re-encryption to real servers -------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(authority: Authority) -> Certificate:
    cert_pem, key_pem = authority.issue("backend.internal", ["backend.internal"], ["127.0.0.1"])
    return Certificate(name="backend", cert_pem=cert_pem, key_pem=key_pem)


@pytest.fixture(scope="module")
def trust(authority: Authority, backend: Certificate) -> dict[str, Certificate]:
    other = Authority.create("Some Other CA")
    own, own_key = make_self_signed("self.internal", ["self.internal"])
    return {
        "backend": backend,
        # trust anchors carry no key
        "internal-ca": Certificate(name="internal-ca", cert_pem=authority.cert_pem, key_pem=""),
        "other-ca": Certificate(name="other-ca", cert_pem=other.cert_pem, key_pem=""),
        "self": Certificate(name="self", cert_pem=own, key_pem=own_key),
    }


def reencrypt_to(server, reencrypt: TLSReencrypt, trust, host: str | None):  # type: ignore[no-untyped-def]
    """Connect like the proxy does; returns the negotiated version or raises ssl.SSLError."""
    ctx = client_context(reencrypt, trust)
    hostname = server_hostname_for(reencrypt, host, "127.0.0.1")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        return tls.version()


def backend_server(tls_server, trust, name: str = "backend"):  # type: ignore[no-untyped-def]
    return tls_server(server_context(TLSOffload(certificates=[name]), trust))


def test_verify_with_the_right_ca_accepts_and_sends_sni(tls_server, trust) -> None:  # type: ignore[no-untyped-def]
    server = backend_server(tls_server, trust)
    reencrypt = TLSReencrypt(verify=True, ca_certificate="internal-ca")
    assert reencrypt_to(server, reencrypt, trust, "Backend.Internal:8443") == "TLSv1.3"
    seen = server.next_handshake()
    assert (seen.ok, seen.server_name) == (True, "backend.internal")


def test_verify_with_the_wrong_ca_fails(tls_server, trust) -> None:  # type: ignore[no-untyped-def]
    server = backend_server(tls_server, trust)
    reencrypt = TLSReencrypt(verify=True, ca_certificate="other-ca")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        reencrypt_to(server, reencrypt, trust, "backend.internal")
    assert not server.next_handshake().ok


def test_verify_checks_the_host_name(tls_server, trust) -> None:  # type: ignore[no-untyped-def]
    server = backend_server(tls_server, trust)
    reencrypt = TLSReencrypt(verify=True, ca_certificate="internal-ca", sni="intranet.internal")
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        reencrypt_to(server, reencrypt, trust, "backend.internal")
    assert not server.next_handshake().ok


def test_verify_without_sni_checks_the_server_address(tls_server, trust) -> None:  # type: ignore[no-untyped-def]
    server = backend_server(tls_server, trust)
    reencrypt = TLSReencrypt(verify=True, ca_certificate="internal-ca", sni="none")
    assert reencrypt_to(server, reencrypt, trust, "backend.internal")
    assert server.next_handshake().server_name is None  # IP SAN checked, nothing sent


def test_verify_with_system_store_refuses_internal_ca(tls_server, trust) -> None:  # type: ignore[no-untyped-def]
    server = backend_server(tls_server, trust)
    with pytest.raises(ssl.SSLCertVerificationError):
        reencrypt_to(server, TLSReencrypt(verify=True), trust, "backend.internal")
    server.next_handshake()


def test_no_verify_accepts_self_signed(tls_server, trust) -> None:  # type: ignore[no-untyped-def]
    server = backend_server(tls_server, trust, "self")
    assert reencrypt_to(server, TLSReencrypt(), trust, "www.example.com:443")
    seen = server.next_handshake()
    assert (seen.ok, seen.certificate, seen.server_name) == (True, "self", "www.example.com")


def test_fixed_sni_reaches_the_server(tls_server, trust) -> None:  # type: ignore[no-untyped-def]
    server = backend_server(tls_server, trust, "self")
    assert reencrypt_to(server, TLSReencrypt(sni="fixed.internal"), trust, "www.example.com")
    assert server.next_handshake().server_name == "fixed.internal"


def test_client_context_refuses_an_unknown_ca(trust) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="no certificate named 'missing'"):
        client_context(TLSReencrypt(verify=True, ca_certificate="missing"), trust)


@pytest.mark.parametrize(
    ("sni", "host", "expected"),
    [
        ("host", "www.Example.com:8080", "www.example.com"),
        ("host", "www.example.com.", "www.example.com"),
        ("host", "www.example.com", "www.example.com"),
        ("host", "10.0.0.1", None),
        ("host", "10.0.0.1:443", None),
        ("host", "[2001:db8::1]:443", None),
        ("host", "2001:db8::1", None),
        ("host", "", None),
        ("host", None, None),
        ("host", "bad host", None),
        ("host", "ex\u00e4mple.com", None),
        ("none", "www.example.com", None),
        ("api.internal", "www.example.com", "api.internal"),
    ],
)
def test_sni_for(sni: str, host: str | None, expected: str | None) -> None:
    assert sni_for(TLSReencrypt(sni=sni), host) == expected


def test_server_hostname_for_falls_back_to_the_address_only_when_verifying() -> None:
    assert server_hostname_for(TLSReencrypt(verify=True), "10.0.0.1", "10.0.0.9") == "10.0.0.9"
    assert server_hostname_for(TLSReencrypt(verify=False), "10.0.0.1", "10.0.0.9") is None
    assert server_hostname_for(TLSReencrypt(verify=True), "a.example", "10.0.0.9") == "a.example"


# --- gevent, as the data plane uses it ---------------------------------------------------------


def test_gevent_sockets_report_sni_and_certificate(trust) -> None:  # type: ignore[no-untyped-def]
    offload = TLSOffload(certificates=["self", "backend"])
    # the test session runs monkey-patched, as the engine does: ssl.SSLContext is gevent's
    server_ctx = server_context(offload, trust)
    assert isinstance(server_ctx, gevent.ssl.SSLContext)
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    seen: dict[str, str | None] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        # gevent's SSLSocket around a context of either class, as the proxy may build it
        tls = gevent.ssl.SSLSocket(conn, server_side=True, _context=server_ctx)
        seen["certificate"] = chosen_certificate(tls)
        seen["server_name"] = server_name(tls)
        tls.sendall(b"hi")
        tls.close()

    server = gevent.spawn(serve)
    try:
        client_ctx = client_context(TLSReencrypt(), trust, context_class=gevent.ssl.SSLContext)
        with gevent.Timeout(3):
            raw = gevent.socket.create_connection(listener.getsockname())
            tls = client_ctx.wrap_socket(raw, server_hostname="backend.internal")
            assert tls.recv(2) == b"hi"
            tls.close()
            server.get()
    finally:
        server.kill()
        listener.close()
    assert seen == {"certificate": "backend", "server_name": "backend.internal"}


UNPATCHED_GEVENT = """
import ssl, gevent, gevent.socket, gevent.ssl
from passerelle.engine.model import Certificate, TLSOffload
from passerelle.engine.tls.certificates import make_self_signed
from passerelle.engine.tls.contexts import chosen_certificate, server_context, server_name

certs = {}
for name in ("one", "two"):
    pem, key = make_self_signed(name, [name + ".internal"])
    certs[name] = Certificate(name=name, cert_pem=pem, key_pem=key)
ctx = server_context(TLSOffload(certificates=["one", "two"]), certs)
assert type(ctx) is ssl.SSLContext
listener = gevent.socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()

def serve():
    conn, _ = listener.accept()
    tls = gevent.ssl.SSLSocket(conn, server_side=True, _context=ctx)
    print(chosen_certificate(tls), server_name(tls))
    tls.close()

server = gevent.spawn(serve)
client = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
with gevent.Timeout(3):
    raw = gevent.socket.create_connection(listener.getsockname())
    client.wrap_socket(raw, server_hostname="TWO.internal").close()
    server.get()
"""


def test_stdlib_context_under_an_unpatched_gevent_socket() -> None:
    # gevent hands SNI callbacks a wrapper of its raw socket unless the context is gevent's
    proc = subprocess.run(
        [sys.executable, "-c", UNPATCHED_GEVENT], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["two", "two.internal"]


def _certificate_pem(common_name: str, san: list[x509.GeneralName] | None) -> str:
    """A self-signed certificate with exactly the subject and SAN the test asks for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    "common_name, san",
    [
        ("Only.CN.Example", None),
        ("cn.example", [x509.DNSName("A.Example"), x509.DNSName("*.wild.example")]),
        ("cn.example", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        ("cn.example", [x509.DNSName("b.example"), x509.RFC822Name("x@b.example")]),
    ],
)
def test_sni_names_match_the_x509_reading(common_name: str, san: list | None) -> None:
    pem = _certificate_pem(common_name, san)
    assert sni_names(pem) == leaf_dns_names(pem)


def test_sni_names_read_the_leaf_of_a_chain() -> None:
    leaf = _certificate_pem("leaf.example", [x509.DNSName("leaf.example")])
    other = _certificate_pem("other.example", [x509.DNSName("other.example")])
    assert sni_names(leaf + other) == ("leaf.example",)


def test_sni_names_without_the_ssl_decoder_use_cryptography(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delattr(ssl._ssl, "_test_decode_cert")  # type: ignore[attr-defined]
    pem = _certificate_pem("cn.example", [x509.DNSName("Z.example")])
    assert sni_names(pem) == ("z.example",)


def test_sni_names_need_no_x509_code(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pem = _certificate_pem("cn.example", [x509.DNSName("y.example")])

    def refuse(cert_pem: str) -> tuple[str, ...]:
        raise AssertionError("cryptography was asked")

    monkeypatch.setattr("passerelle.engine.tls.certificates.leaf_dns_names", refuse)
    assert sni_names(pem) == ("y.example",)
