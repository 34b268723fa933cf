"""Mutual authentication of replication calls with the pair's shared secret (HMAC-SHA256).

The caller signs method, path, time, a fresh nonce and the body; the answerer signs the same
nonce with its status and body. So each side proves it holds the secret, an answer cannot be
replayed for another request, and a request cannot be replayed after a short window.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping

NODE = "X-Passerelle-HA-Node"
TIME = "X-Passerelle-HA-Time"
NONCE = "X-Passerelle-HA-Nonce"
SIGNATURE = "X-Passerelle-HA-Signature"

WINDOW = 30.0  # seconds of clock difference tolerated between the two appliances


class SignatureError(Exception):
    """A request or answer that the shared secret does not vouch for."""


def _mac(secret: str, *parts: str | bytes) -> str:
    message = b"\n".join(p.encode() if isinstance(p, str) else p for p in parts)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def request_headers(
    secret: str, node: str, method: str, path: str, body: bytes, now: float
) -> dict[str, str]:
    stamp, nonce = f"{now:.3f}", secrets.token_hex(16)
    signature = _mac(secret, "request-v1", node, method.upper(), path, stamp, nonce, _digest(body))
    return {NODE: node, TIME: stamp, NONCE: nonce, SIGNATURE: signature}


class NonceCache:
    """Nonces seen within the window: a captured request cannot be sent a second time."""

    def __init__(self, size: int = 4096) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._size = size

    def add(self, nonce: str, now: float) -> bool:
        """False when ``nonce`` was already used."""
        while self._seen and (
            len(self._seen) >= self._size or next(iter(self._seen.values())) < now - 2 * WINDOW
        ):
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


def verify_request(
    secret: str,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float,
    nonces: NonceCache,
) -> str:
    """The caller's node letter; SignatureError unless the request is genuine and fresh."""
    node, stamp = headers.get(NODE, ""), headers.get(TIME, "")
    nonce, signature = headers.get(NONCE, ""), headers.get(SIGNATURE, "")
    if not (node and stamp and nonce and signature):
        raise SignatureError("missing HA signature headers")
    try:
        sent = float(stamp)
    except ValueError:
        raise SignatureError("bad HA time stamp") from None
    if abs(now - sent) > WINDOW:
        raise SignatureError(
            f"the peer's clock is {now - sent:+.0f} s off ours; synchronise the clocks"
        )
    expected = _mac(secret, "request-v1", node, method.upper(), path, stamp, nonce, _digest(body))
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("wrong HA signature (the pair's secrets differ: pair again)")
    if not nonces.add(nonce, now):
        raise SignatureError("replayed HA request")
    return node


def response_signature(secret: str, nonce: str, status: int, body: bytes) -> str:
    return _mac(secret, "response-v1", nonce, str(status), _digest(body))


def verify_response(secret: str, nonce: str, status: int, body: bytes, signature: str) -> None:
    expected = response_signature(secret, nonce, status, body)
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("the peer's answer is not signed with the pair's secret")
