"""Calling the peer's management API over HTTPS, with its certificate pinned.

Both appliances present self-signed management certificates, so trust is established once, at
pairing: the admin credentials vouch for the peer and the fingerprint seen then is pinned.
Afterwards every replication call is signed with the pair's secret (see signing.py).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from passerelle.engine.ha import signing


class PeerError(Exception):
    """The peer cannot be reached or its answer cannot be trusted."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON (None when empty)
    fingerprint: str  # SHA-256 of the certificate the peer presented
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case


def fingerprint_of_pem(pem: str) -> str:
    der = ssl.PEM_cert_to_DER_cert(pem)
    return hashlib.sha256(der).hexdigest()


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the fingerprint check below replaces it
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def call(
    api_url: str,
    method: str,
    path: str,
    payload: Any = None,
    *,
    headers: dict[str, str] | None = None,
    pinned: str | None = None,
    timeout: float = 5.0,
    body: bytes | None = None,
) -> Answer:
    """One request to ``api_url + path``; refuses a certificate other than ``pinned``."""
    parts = urlsplit(api_url)
    if parts.scheme != "https" or not parts.hostname:
        raise PeerError(f"{api_url!r} is not an https:// URL")
    if body is None:
        body = b"" if payload is None else json.dumps(payload).encode()
    sent = {"Accept": "application/json", **(headers or {})}
    if body:
        sent["Content-Type"] = "application/json"
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, timeout=timeout, context=_context()
    )
    try:
        connection.connect()
        der = connection.sock.getpeercert(binary_form=True) or b""  # type: ignore[union-attr]
        seen = hashlib.sha256(der).hexdigest()
        if pinned is not None and seen != pinned:
            raise PeerError(
                f"{api_url} presented certificate {seen[:16]}..., not the one pinned at "
                "pairing; pair the appliances again if it was replaced"
            )
        connection.request(method, parts.path.rstrip("/") + path, body=body, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
    except (OSError, http.client.HTTPException) as exc:
        raise PeerError(f"cannot reach {api_url}: {exc}") from None
    finally:
        connection.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode("utf-8", "replace")[:200]
    return Answer(response.status, parsed, seen, raw, answer_headers)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class PeerClient:
    """Signed calls to the paired appliance; the answers must be signed too."""

    def __init__(
        self, api_url: str, secret: str, node: str, pinned: str | None, timeout: float = 3.0
    ) -> None:
        self.api_url = api_url
        self.secret = secret
        self.node = node
        self.pinned = pinned
        self.timeout = timeout

    def request(self, method: str, path: str, payload: Any = None) -> Answer:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        full_path = urlsplit(self.api_url).path.rstrip("/") + path
        headers = signing.request_headers(
            self.secret, self.node, method, full_path, body, time.time()
        )
        answer = call(
            self.api_url,
            method,
            path,
            headers=headers,
            pinned=self.pinned,
            timeout=self.timeout,
            body=body,
        )
        signature = answer.headers.get(signing.SIGNATURE.lower(), "")
        try:
            signing.verify_response(
                self.secret, headers[signing.NONCE], answer.status, answer.raw, signature
            )
        except signing.SignatureError as exc:
            detail = answer.body.get("error") if isinstance(answer.body, dict) else answer.body
            raise PeerError(f"{exc} (HTTP {answer.status}: {detail})") from None
        return answer
