"""TLS session resumption on an offloading service, which the clients of Skype for Business
and Exchange count on: TLS 1.3 session tickets and TLS 1.2 sessions, from a real client.

Two workers: the supervisor gives every worker the same ticket keys, so a session resumes on
whichever worker a reconnect reaches."""

from __future__ import annotations

import socket
import ssl

import pytest

from passerelle.engine.tls.certificates import Authority

from support.http_peers import l7_service, shared_deployer

l7 = shared_deployer("tls-resume", workers=2)
NAME = "www.contoso.com"


@pytest.fixture
def service(l7, servers, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    ca = Authority.create("Contoso Test CA")
    cert_pem, key_pem = ca.issue(NAME, [NAME])
    [port] = l7.deploy(
        l7_service(servers.http("fe0"), tls={"certificates": ["www"]}),
        certificates=[{"name": "www", "cert_pem": cert_pem, "key_pem": key_pem}],
    )
    ca_path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca_path.write_text(ca.cert_pem)
    return port, str(ca_path)


def _fetch(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[bool, ssl.SSLSession | None]:
    """One request over a new TLS connection: whether its session was resumed, and the session."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=NAME, session=session) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(4096):  # reading to the end also takes in TLS 1.3 tickets
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        return tls.session_reused, tls.session


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_session_resumes_on_the_next_connections(service, version: ssl.TLSVersion) -> None:
    port, ca_path = service
    context = ssl.create_default_context(cafile=ca_path)
    context.maximum_version = version
    reused, session = _fetch(port, context)
    assert not reused
    assert session is not None
    # Twenty reconnects spread over both workers (the kernel hashes each new connection to one
    # listener): all of them are resumed only if the workers share their ticket keys.
    assert [_fetch(port, context, session)[0] for _ in range(20)] == [True] * 20
