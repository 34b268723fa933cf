"""SNI selection: the pure choice, then real handshakes against openssl s_client and curl."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from passerelle.engine.model import Certificate, TLSOffload
from passerelle.engine.tls.certificates import Authority, make_self_signed
from passerelle.engine.tls.contexts import server_context
from passerelle.engine.tls.sni import SNITable, choose_certificate

CERTS = [
    ("appliance", ["appliance.local"]),
    ("wildcard", ["*.contoso.com"]),
    ("www", ["www.contoso.com", "contoso.com"]),
]


@pytest.mark.parametrize(
    ("server_name", "expected"),
    [
        ("www.contoso.com", "www"),  # exact beats a wildcard configured earlier
        ("WWW.Contoso.COM.", "www"),  # case and the trailing root dot do not matter
        ("contoso.com", "www"),
        ("other.contoso.com", "wildcard"),
        ("a.b.contoso.com", "appliance"),  # a wildcard covers one label only
        (".contoso.com", "appliance"),  # an empty label is no label
        ("appliance.local", "appliance"),
        ("unknown.example", "appliance"),
        ("", "appliance"),
        (None, "appliance"),
    ],
)
def test_choice(server_name: str | None, expected: str) -> None:
    assert choose_certificate(server_name, CERTS) == expected


def test_first_certificate_claiming_a_name_wins() -> None:
    certs = [("default", []), ("a", ["*.x.org", "dup.x.org"]), ("b", ["*.X.org", "dup.x.org"])]
    assert choose_certificate("dup.x.org", certs) == "a"
    assert choose_certificate("y.x.org", certs) == "a"


def test_partial_wildcards_are_not_honoured() -> None:
    certs = [("default", []), ("partial", ["w*.x.org"])]
    assert choose_certificate("www.x.org", certs) == "default"
    assert choose_certificate("w*.x.org", certs) == "default"


def test_table_needs_a_certificate() -> None:
    with pytest.raises(ValueError):
        SNITable([])


@pytest.fixture(scope="module")
def contoso(authority: Authority) -> dict[str, Certificate]:
    www = authority.issue("www.contoso.com", ["www.contoso.com"], key_type="rsa-2048")
    wildcard = authority.issue("*.contoso.com", ["*.contoso.com"], key_type="ecdsa-p256")
    appliance = make_self_signed("appliance", ["appliance.passerelle.local"])
    return {
        "appliance": Certificate(name="appliance", cert_pem=appliance[0], key_pem=appliance[1]),
        "wildcard": Certificate(name="wildcard", cert_pem=wildcard[0], key_pem=wildcard[1]),
        "www": Certificate(name="www", cert_pem=www[0], key_pem=www[1]),
    }


@pytest.fixture
def contoso_server(tls_server, contoso):  # type: ignore[no-untyped-def]
    offload = TLSOffload(certificates=["appliance", "wildcard", "www"])
    return tls_server(server_context(offload, contoso))


@pytest.mark.parametrize(
    ("sni", "dns_name", "key_type", "certificate"),
    [
        ("www.contoso.com", "www.contoso.com", rsa.RSAPublicKey, "www"),
        ("other.contoso.com", "*.contoso.com", ec.EllipticCurvePublicKey, "wildcard"),
        ("a.b.contoso.com", "appliance.passerelle.local", ec.EllipticCurvePublicKey, "appliance"),
        (None, "appliance.passerelle.local", ec.EllipticCurvePublicKey, "appliance"),
    ],
)
def test_openssl_client_gets_the_chosen_certificate(  # type: ignore[no-untyped-def]
    contoso_server, s_client, sni, dns_name, key_type, certificate
) -> None:
    result = s_client(contoso_server.port, servername=sni)
    assert result.connected, result.output
    assert result.dns_names() == [dns_name]
    assert isinstance(result.leaf.public_key(), key_type)
    seen = contoso_server.next_handshake()
    assert seen.ok
    assert seen.certificate == certificate
    assert seen.server_name == sni


def test_curl_verifies_ca_issued_certificate(  # type: ignore[no-untyped-def]
    contoso_server, ca_file: Path
) -> None:
    port = contoso_server.port
    for name, certificate in (("www.contoso.com", "www"), ("Shop.Contoso.com", "wildcard")):
        proc = subprocess.run(
            [
                "curl", "--silent", "--show-error", "--max-time", "5",
                "--resolve", f"{name}:{port}:127.0.0.1", "--cacert", str(ca_file),
                "--write-out", "%{http_version}", f"https://{name}:{port}/",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "ok\n1.1"  # body, then the HTTP version ALPN settled on
        seen = contoso_server.next_handshake()
        assert (seen.certificate, seen.server_name, seen.alpn) == (
            certificate,
            name.lower(),
            "http/1.1",
        )


def test_curl_without_the_ca_refuses(contoso_server) -> None:  # type: ignore[no-untyped-def]
    port = contoso_server.port
    proc = subprocess.run(
        [
            "curl", "--silent", "--max-time", "5", "--resolve",
            f"www.contoso.com:{port}:127.0.0.1", f"https://www.contoso.com:{port}/",
        ],
        capture_output=True,
        timeout=10,
    )  # fmt: skip
    assert proc.returncode == 60, proc.returncode  # CURLE_PEER_FAILED_VERIFICATION
    assert not contoso_server.next_handshake().ok  # curl aborted the handshake
