"""What the boot test says to a booted appliance through QEMU's loopback forwards.

Each forward is ``127.0.0.1:<port>`` on the host to ``<appliance address>:<port>`` in the guest,
so the client connects to loopback but names the appliance address (SNI, Host header, the
certificate check), as a browser at the appliance address would.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from passerelle.provisioning.appliance_api import https_request


class ApplianceAnswerError(Exception):
    """The appliance answered, but not with what the boot test asked for."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise ApplianceAnswerError(
                f"expected JSON, got {self.content_type or 'no type'}: {self.body[:80]!r}"
            ) from None


def served_certificate(port: int, address: str, timeout: float = 5.0) -> bytes:
    """The DER certificate the appliance presents on the forwarded port (any certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # read first, judged afterwards
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=address) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ApplianceAnswerError("the TLS server presented no certificate")
    return der


def fingerprint_sha256(der: bytes) -> str:
    """Colon-separated upper-case hex, the form first boot prints and browsers show."""
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex(":").upper()


def pinned_context(der: bytes) -> ssl.SSLContext:
    """Trusts exactly this self-signed certificate, and checks that it names the address the
    client asks for (an IP address must be in its subjectAltName)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=der)
    return context


class ApplianceClient:
    """HTTPS requests to the management API with HTTP Basic credentials."""

    def __init__(
        self,
        port: int,
        address: str,
        context: ssl.SSLContext,
        user: str,
        password: str,
        timeout: float = 20.0,
    ) -> None:
        self.port = port
        self.address = address
        self.context = context
        self.timeout = timeout
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._authorization = f"Basic {token}"

    def request(self, method: str, path: str, body: object | None = None) -> Answer:
        answer = https_request(
            self.address,
            443,
            method,
            path,
            context=self.context,
            timeout=self.timeout,
            headers={"Accept": "application/json", "Authorization": self._authorization},
            body=body,
            forward_port=self.port,
        )
        return Answer(answer.status, answer.body, answer.content_type)

    def get_json(self, path: str) -> Any:
        answer = self.request("GET", path)
        if answer.status != 200:
            raise ApplianceAnswerError(
                f"GET {path} answered {answer.status}: {answer.body[:200]!r}"
            )
        return answer.json()


def http_get(port: int, host: str, path: str, timeout: float = 10.0) -> Answer:
    """Plain HTTP GET through a forwarded port, naming ``host`` in the Host header."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host, "Connection": "close"})
        response = connection.getresponse()
        return Answer(response.status, response.read(), response.getheader("Content-Type") or "")
    finally:
        connection.close()
