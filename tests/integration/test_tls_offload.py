"""TLS on L7 services end to end: certificate choice by SNI, verification by real clients
(openssl, curl), protocol floor, and re-encryption to real servers with verification."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from passerelle.engine.tls.certificates import Authority

from support.http_peers import (
    UPGRADE_REQUEST,
    Deployer,
    Stream,
    curl_json,
    l7_service,
    shared_deployer,
    websocket_echo,
)

l7 = shared_deployer("tls", workers=2)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One CA, the offload certificates it issued, and its PEM on disk for the clients."""
    ca = Authority.create("Contoso Test CA")
    folder = tmp_path_factory.mktemp("pki")
    ca_path = folder / "ca.pem"
    ca_path.write_text(ca.cert_pem)
    certificates = []
    for name, common_name, dns in (
        ("appliance", "appliance", ["appliance.local"]),
        ("www", "www.contoso.com", ["www.contoso.com"]),
        ("wildcard", "*.contoso.com", ["*.contoso.com"]),
    ):
        cert_pem, key_pem = ca.issue(common_name, dns)
        certificates.append({"name": name, "cert_pem": cert_pem, "key_pem": key_pem})
    return {"ca": ca, "ca_path": ca_path, "certificates": certificates, "folder": folder}


def offload(pki: dict, servers, l7: Deployer, **tls: object) -> tuple[int, object]:
    backend = servers.http("fe0")
    [port] = l7.deploy(
        l7_service(backend, tls={"certificates": ["appliance", "www", "wildcard"], **tls}),
        certificates=pki["certificates"],
    )
    return port, backend


def s_client(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=10,
    )


def presented_cn(port: int, *args: str) -> str:
    result = s_client(port, *args)
    match = re.search(r"^subject=.*CN ?= ?([^,\n]+)", result.stdout, re.M)
    assert match, result.stdout + result.stderr
    return match.group(1).strip()


def test_sni_picks_exact_wildcard_or_default_certificate(l7, servers, pki):
    port, _ = offload(pki, servers, l7)
    assert presented_cn(port, "-servername", "www.contoso.com") == "www.contoso.com"
    assert presented_cn(port, "-servername", "other.contoso.com") == "*.contoso.com"
    assert presented_cn(port, "-servername", "WWW.Contoso.COM") == "www.contoso.com"
    assert presented_cn(port, "-servername", "unknown.example") == "appliance"
    assert presented_cn(port, "-servername", "a.b.contoso.com") == "appliance"
    assert presented_cn(port, "-noservername") == "appliance"


def curl(port: int, ca_path: Path, name: str, path: str = "/") -> dict:
    return curl_json(
        "--cacert",
        str(ca_path),
        "--resolve",
        f"{name}:{port}:127.0.0.1",
        f"https://{name}:{port}{path}",
    )


def test_curl_verifies_the_chosen_certificate_and_the_server_learns_https(l7, servers, pki):
    port, backend = offload(pki, servers, l7)
    www = curl(port, pki["ca_path"], "www.contoso.com", "/www")
    other = curl(port, pki["ca_path"], "other.contoso.com", "/other")
    assert www["host"] == f"www.contoso.com:{port}"
    assert other["host"] == f"other.contoso.com:{port}"
    for seen in (www, other):
        assert seen["headers"]["x-forwarded-proto"] == "https"
        assert seen["tls"] is False  # offloaded: plain HTTP to the real server
    assert [r["path"] for r in backend.seen] == ["/www", "/other"]


def test_tls11_is_refused_unless_configured(l7, servers, pki):
    backend = servers.http("fe0")
    names = ["appliance", "www", "wildcard"]
    strict, legacy = l7.deploy(
        l7_service(backend, tls={"certificates": names}),
        l7_service(
            backend,
            tls={
                "certificates": names,
                "min_version": "TLS1.0",
                "cipher_set": "backward-compatible",
            },
        ),
        certificates=pki["certificates"],
    )
    # The client offers TLS 1.1 for real (OpenSSL 3 refuses it at its default level).
    old = ("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "www.contoso.com")
    assert negotiated(strict, *old) is None
    assert negotiated(legacy, *old) == "TLSv1.1"
    assert negotiated(strict, "-servername", "www.contoso.com") in ("TLSv1.2", "TLSv1.3")


def negotiated(port: int, *args: str) -> str | None:
    """The protocol version of the session s_client established; None when it failed."""
    result = s_client(port, "-brief", *args)
    match = re.search(r"^Protocol version: (\S+)", result.stderr, re.M)
    return match.group(1) if match and "CONNECTION ESTABLISHED" in result.stderr else None


# -- re-encryption ------------------------------------------------------------------------------


def tls_server_context(folder: Path, authority: Authority, names: list[str], ips=()) -> tuple:
    """A server context with a certificate from ``authority``; records the SNI it is sent."""
    cert_pem, key_pem = authority.issue(names[0] if names else "server", names, ips)
    stem = folder / f"server-{time.monotonic_ns()}"
    cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
    cert_path.write_text(cert_pem)
    key_path.write_text(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    sni: list[str | None] = []
    ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    return ctx, sni


def ca_entry(authority: Authority) -> dict:
    # A trust anchor only: the model requires key_pem, and an empty one must do.
    return {"name": "internal-ca", "cert_pem": authority.cert_pem, "key_pem": ""}


def reencrypting(backend, **reencrypt: object) -> dict:
    return l7_service(
        backend,
        connect_timeout=2,
        reencrypt={"verify": True, "ca_certificate": "internal-ca", **reencrypt},
    )


def request(port: int, host: str | None = None, path: str = "/") -> tuple[int, bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
    started = time.monotonic()
    conn.request("GET", path, headers={"Host": host} if host else {})
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return answer.status, body, time.monotonic() - started


def test_reencryption_verifies_the_server_and_sends_sni_from_host(l7, servers, pki):
    ctx, sni = tls_server_context(pki["folder"], pki["ca"], ["www.contoso.com"])
    backend = servers.http("secure", tls=ctx)
    [port] = l7.deploy(reencrypting(backend), certificates=[ca_entry(pki["ca"])])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    answers = []
    for path in ("/one", "/two", "/three"):
        conn.request("GET", path, headers={"Host": "www.contoso.com"})
        answer = conn.getresponse()
        answers.append((answer.status, answer.read()))
    conn.close()
    assert [status for status, _ in answers] == [200, 200, 200], answers
    seen = [json.loads(body) for _, body in answers]
    assert all(s["tls"] is True and s["host"] == "www.contoso.com" for s in seen)
    assert sni == ["www.contoso.com"]
    # The re-encrypted connection went back to the pool and served every request.
    assert len({s["connection"] for s in seen}) == 1


def test_reencryption_verify_without_a_host_name_checks_the_server_address(l7, servers, pki):
    # Host is an IP literal: no SNI is sent, and the certificate must name the address.
    ctx, sni = tls_server_context(pki["folder"], pki["ca"], [], ["127.0.0.1"])
    backend = servers.http("by-address", tls=ctx)
    [port] = l7.deploy(reencrypting(backend), certificates=[ca_entry(pki["ca"])])
    status, body, _ = request(port)
    assert status == 200, body
    assert sni == [None]


def test_reencryption_refuses_a_server_certificate_from_another_ca(l7, servers, pki):
    rogue = Authority.create("Rogue CA")
    ctx, _ = tls_server_context(pki["folder"], rogue, ["www.contoso.com"])
    backend = servers.http("rogue", tls=ctx)
    [port] = l7.deploy(reencrypting(backend), certificates=[ca_entry(pki["ca"])])
    status, body, took = request(port, "www.contoso.com")
    assert status in (502, 503), body
    assert took < 5
    assert backend.seen == []


def test_websocket_upgrade_through_tls_offload(l7, raw, pki):
    server = raw(websocket_echo)
    [port] = l7.deploy(
        l7_service(server, tls={"certificates": ["appliance", "www", "wildcard"]}),
        certificates=pki["certificates"],
    )
    ctx = ssl.create_default_context(cafile=str(pki["ca_path"]))
    sock = ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="www.contoso.com"
    )
    client = Stream(sock)
    client.send(UPGRADE_REQUEST + b"client-first")
    head = client.head()
    assert head is not None and head.status == 101
    assert client.exact(len(b"server-first")) == b"server-first"
    assert client.exact(len(b"echo:client-first")) == b"echo:client-first"
    for i in range(3):
        message = b"over-tls-%d" % i
        client.send(message)
        assert client.exact(len(message) + 5) == b"echo:" + message
    client.close()


def test_l4_reencryption_with_verify_reaches_a_server_certified_for_its_address(l7, servers, pki):
    ctx, _ = tls_server_context(pki["folder"], pki["ca"], [], ["127.0.0.1"])
    backend = servers.http("l4-secure", tls=ctx)
    service = reencrypting(backend)
    service["mode"] = "l4"
    [port] = l7.deploy(service, certificates=[ca_entry(pki["ca"])])
    status, body, _ = request(port)
    assert status == 200, body


def test_reencrypted_server_connections_carry_many_requests_from_the_pool(l7, servers, pki):
    # Pooled TLS connections to the server are used from the event loop: a session ticket the
    # server sends after the handshake must not be taken for the server closing the connection.
    ctx, _ = tls_server_context(pki["folder"], pki["ca"], ["www.contoso.com"])
    backend = servers.http("pooled", tls=ctx)
    [port] = l7.deploy(reencrypting(backend), certificates=[ca_entry(pki["ca"])])
    clients = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(2)]
    seen = []
    for i in range(40):
        conn = clients[i % 2]
        conn.request("GET", f"/{i}", headers={"Host": "www.contoso.com"})
        answer = conn.getresponse()
        assert answer.status == 200
        seen.append(json.loads(answer.read()))
        if i == 20:
            time.sleep(0.3)  # idle in the pool a while, as between a user's clicks
    for conn in clients:
        conn.close()
    assert [s["path"] for s in seen] == [f"/{i}" for i in range(40)]
    assert all(s["tls"] is True for s in seen)
    # Each client connection may land on either worker, and each worker pools its own: at
    # most one server connection per worker, never one per request.
    assert len({s["connection"] for s in seen}) <= 2


# -- the handshake, held by the event loop ---------------------------------------------------


def _client_context(pki: dict) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki["ca_path"]))


def _closed_by_peer_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_client_stalled_in_its_handshake_is_cut_off_and_does_not_hold_up_others(l7, servers, pki):
    backend = servers.http("fe0")
    names = ["appliance", "www", "wildcard"]
    [port] = l7.deploy(
        l7_service(backend, header_timeout=1, tls={"certificates": names}),
        certificates=pki["certificates"],
    )
    silent = socket.create_connection(("127.0.0.1", port))
    # Half a ClientHello: a record header promising more than is sent.
    partial = socket.create_connection(("127.0.0.1", port))
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    try:
        # Both workers keep serving while the two handshakes wait for their bytes.
        seen = [curl(port, pki["ca_path"], "www.contoso.com", f"/during-{i}") for i in range(6)]
        assert [s["path"] for s in seen] == [f"/during-{i}" for i in range(6)]
        # The header timeout (1 s) bounds the handshake too.
        assert _closed_by_peer_within(silent, 5)
        assert _closed_by_peer_within(partial, 5)
    finally:
        silent.close()
        partial.close()


def test_plain_http_on_a_tls_port_is_closed_and_the_listener_carries_on(l7, servers, pki):
    port, backend = offload(pki, servers, l7)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: www.contoso.com\r\n\r\n")
        answer = b""
        with contextlib.suppress(ConnectionResetError):  # a reset is a close too
            while chunk := plain.recv(4096):  # times out (and fails) if never closed
                answer += chunk
        assert b"HTTP/1.1 200" not in answer
    assert curl(port, pki["ca_path"], "www.contoso.com", "/after")["path"] == "/after"
    assert [r["path"] for r in backend.seen] == ["/after"]


def test_many_simultaneous_handshakes_all_complete(l7, servers, pki):
    port, backend = offload(pki, servers, l7)
    context = _client_context(pki)
    pending = []
    # Connect them all before any handshake, so that the listener has a burst to accept.
    for _ in range(40):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        pending.append(sock)
    results = []
    for i, sock in enumerate(pending):
        with context.wrap_socket(sock, server_hostname="www.contoso.com") as tls:
            tls.sendall(f"GET /n{i} HTTP/1.1\r\nHost: www.contoso.com\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += tls.recv(4096)
            results.append(head.split(b"\r\n", 1)[0])
    assert results == [b"HTTP/1.1 200 OK"] * 40
    assert sorted(r["path"] for r in backend.seen) == sorted(f"/n{i}" for i in range(40))


def test_a_client_hanging_up_without_close_notify_gets_a_plain_close(l7, servers, pki):
    # Most clients never send close_notify. The end of their input closes the connection;
    # it is no error, and no fatal alert is written at them (which OpenSSL does by default).
    port, backend = offload(pki, servers, l7)
    context = _client_context(pki)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="www.contoso.com") as tls,
    ):
        tls.sendall(b"GET /first HTTP/1.1\r\nHost: www.contoso.com\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(4096)
        assert head.startswith(b"HTTP/1.1 200")
        socket.socket.shutdown(tls, socket.SHUT_WR)  # a TCP FIN, no TLS alert before it
        rest = b""
        while chunk := tls.recv(4096):  # an alert from the engine would raise SSLError here
            rest += chunk
    assert [r["path"] for r in backend.seen] == ["/first"]


def test_sni_rules_route_on_a_service_with_one_certificate(l7, servers, pki):
    # With one certificate nothing is chosen by name: the service still learns it for rules.
    sip, web = servers.http("sip"), servers.http("web")

    def pool(name: str, backend, **extra: object) -> dict:
        return {
            "name": name,
            "real_servers": [{"address": backend.address, "port": backend.port}],
            "health_check": {"type": "none"},
            **extra,
        }

    service = {
        "mode": "http",
        "tls": {"certificates": ["wildcard"]},
        "subvs": [pool("sip", sip, rules=[{"sni": ["sip.contoso.com"]}]), pool("web", web)],
        "default_subvs": "web",
    }
    [port] = l7.deploy(service, certificates=pki["certificates"])
    curl(port, pki["ca_path"], "sip.contoso.com", "/by-sni")
    curl(port, pki["ca_path"], "www.contoso.com", "/by-default")
    assert [r["path"] for r in sip.seen] == ["/by-sni"]
    assert [r["path"] for r in web.seen] == ["/by-default"]
