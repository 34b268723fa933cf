"""Replication calls are signed both ways with the pair's secret."""

from __future__ import annotations

import pytest

from passerelle.engine.ha import signing

SECRET = "the-pair-secret-0123456789"


def signed(now: float = 1000.0, body: bytes = b'{"a":1}') -> dict[str, str]:
    return signing.request_headers(SECRET, "a", "PUT", "/api/v1/ha/sync/config", body, now)


def verify(headers: dict[str, str], *, secret: str = SECRET, now: float = 1000.0, **kw: object):
    values = {"method": "PUT", "path": "/api/v1/ha/sync/config", "body": b'{"a":1}', **kw}
    return signing.verify_request(
        secret,
        str(values["method"]),
        str(values["path"]),
        values["body"],  # type: ignore[arg-type]
        headers,
        now,
        signing.NonceCache(),
    )


def test_a_genuine_request_names_its_node():
    assert verify(signed()) == "a"


@pytest.mark.parametrize(
    "tamper",
    [
        {"secret": "another-secret-0123456789"},
        {"body": b'{"a":2}'},
        {"path": "/api/v1/ha/sync/persistence"},
        {"method": "GET"},
        {"now": 1000.0 + signing.WINDOW + 1},
    ],
)
def test_a_tampered_or_stale_request_is_refused(tamper):
    with pytest.raises(signing.SignatureError):
        verify(signed(), **tamper)


def test_a_request_cannot_be_replayed():
    headers = signed()
    nonces = signing.NonceCache()
    args = (SECRET, "PUT", "/api/v1/ha/sync/config", b'{"a":1}', headers, 1000.0, nonces)
    signing.verify_request(*args)
    with pytest.raises(signing.SignatureError, match="replayed"):
        signing.verify_request(*args)


def test_missing_headers_are_refused():
    with pytest.raises(signing.SignatureError, match="missing"):
        verify({})


def test_answers_are_bound_to_the_request_nonce():
    signature = signing.response_signature(SECRET, "nonce-1", 200, b"{}")
    signing.verify_response(SECRET, "nonce-1", 200, b"{}", signature)
    for nonce, status, body in (("nonce-2", 200, b"{}"), ("nonce-1", 409, b"{}")):
        with pytest.raises(signing.SignatureError):
            signing.verify_response(SECRET, nonce, status, body, signature)
