"""Shared session ticket keys: a ticket one context issued resumes on another."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.engine.tls import tickets
from passerelle.engine.tls.certificates import make_self_signed


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Path]:
    pem, key = make_self_signed("resume", ["resume.test"])
    path = tmp_path / "chain.pem"
    path.write_text(pem + key)
    yield path
    tickets.use_keys(None)


def server_context(chain: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain)
    return ctx


def resumed_on_each(contexts: list[ssl.SSLContext]) -> list[bool]:
    """One connection to each context in turn, offering the session the previous one gave."""
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    session, reused = None, []
    for ctx in contexts:
        with socket.create_server(("127.0.0.1", 0)) as listener:

            def serve(ctx: ssl.SSLContext = ctx, listener: socket.socket = listener) -> None:
                conn, _ = listener.accept()
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(tls.recv(16))  # the echo carries the TLS 1.3 ticket out

            server = threading.Thread(target=serve)
            server.start()
            raw = socket.create_connection(listener.getsockname(), timeout=5)
            with client.wrap_socket(raw, session=session) as tls:
                tls.sendall(b"ping")
                assert tls.recv(16) == b"ping"
                reused.append(tls.session_reused)
                session = tls.session
            server.join(5)
    return reused


def test_contexts_with_the_shared_keys_resume_each_others_sessions(chain: Path) -> None:
    tickets.use_keys(tickets.new_keys())
    first, second = server_context(chain), server_context(chain)
    assert tickets.share_keys(first) and tickets.share_keys(second)
    assert resumed_on_each([first, second, first, second]) == [False, True, True, True]


def test_without_shared_keys_a_session_does_not_cross_contexts(chain: Path) -> None:
    first, second = server_context(chain), server_context(chain)
    assert not tickets.share_keys(first)  # no keys given to this process
    assert resumed_on_each([first, second]) == [False, False]


def test_keys_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError):
        tickets.use_keys(b"short")
