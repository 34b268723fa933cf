"""The boot test's appliance checks against real TLS and HTTP servers on loopback: a stand-in
for the appliance's API (with a certificate made by first boot's own code) and its data plane."""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from passerelle.engine.tls.certificates import Authority
from passerelle.firstboot.certificate import fingerprint, make_management_certificate
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.validate import parse_address
from passerelle.image.appliance_client import (
    ApplianceAnswerError,
    ApplianceClient,
    pinned_context,
    served_certificate,
)
from passerelle.image.bootchecks import (
    CheckFailed,
    Expected,
    check_certificate,
    check_first_boot_facts,
    check_virtual_service,
    expected_from,
)

SERIAL = "PSL-ABCDEFGHJK23"
PASSWORD = "K7QM-2XHD-9RTW-EPAF"


@dataclass
class Appliance:
    """What the stand-in answers; tests change it to make one fact wrong."""

    hostname: str = "passerelle"
    address: str = "192.168.1.101/24"
    serial: str = SERIAL
    request_path: str = "compiled"
    licence: dict[str, Any] = field(
        default_factory=lambda: {
            "kind": "demo",
            "serial": SERIAL,
            "days_left": 30,
            "accepts_new_connections": True,
        }
    )
    services: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


def _handler(appliance: Appliance, *, management: bool) -> type[BaseHTTPRequestHandler]:
    expected_auth = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            appliance.requests.append(("GET", self.path, self.headers.get("Host")))
            if not management:  # the data plane: the engine's /stats as the real server
                rows = [
                    {"name": s["name"], "real_servers": [{"server": "127.0.0.1:9900"}]}
                    for s in appliance.services
                ]
                self._send(200, rows)
            elif self.headers.get("Authorization") != expected_auth:
                self._send(401, {"error": "wrong user name or password"})
            elif self.path == "/api/v1/system":
                network = {"address": appliance.address, "prefix": 24}
                system = {"hostname": appliance.hostname, "network": network}
                self._send(
                    200,
                    {**system, "serial": appliance.serial, "request_path": appliance.request_path},
                )
            elif self.path == "/api/v1/licence":
                self._send(200, appliance.licence)
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            appliance.requests.append(("POST", self.path, self.headers.get("Host")))
            if self.headers.get("Authorization") != expected_auth:
                self._send(401, {"error": "wrong user name or password"})
                return
            appliance.services.append(body)
            self._send(201, body)

    return Handler


@dataclass
class Running:
    appliance: Appliance
    api_port: int
    service_port: int
    der: bytes
    fingerprint: str


def _certificate(tmp_path: Path, hostname: str, address: str) -> tuple[Paths, str]:
    paths = Paths.at(tmp_path / "root")
    make_management_certificate(paths, hostname, parse_address(address).ip)
    return paths, fingerprint(paths.management_cert) or ""


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    appliance = Appliance()
    paths, sha256 = _certificate(tmp_path, "passerelle", "192.168.1.101/24")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths.management_cert, paths.management_key)
    api = ThreadingHTTPServer(("127.0.0.1", 0), _handler(appliance, management=True))
    api.socket = context.wrap_socket(api.socket, server_side=True)
    data_plane = ThreadingHTTPServer(("127.0.0.1", 0), _handler(appliance, management=False))
    for server in (api, data_plane):
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    api_port, service_port = api.server_address[1], data_plane.server_address[1]
    der = served_certificate(int(api_port), "192.168.1.101", timeout=3)
    yield Running(appliance, int(api_port), int(service_port), der, sha256)
    for server in (api, data_plane):
        server.shutdown()
        server.server_close()


def _client(running: Running, password: str = PASSWORD) -> ApplianceClient:
    return ApplianceClient(
        running.api_port, "192.168.1.101", pinned_context(running.der), "admin", password, 3
    )


DEFAULT = Expected("192.168.1.101", "passerelle", None)


def test_expected_values_are_first_boots_own_reading(tmp_path: Path) -> None:
    assert expected_from(None) == DEFAULT
    metadata = tmp_path / "m.json"
    metadata.write_text(
        json.dumps(
            {
                "passerelle.ip": "192.168.1.50",
                "netmask": "255.255.255.0",
                "hostname": "LB-Zero.example.test.",
                "admin-password": "Zero Touch 2026!",
            }
        )
    )
    assert expected_from(metadata) == Expected(
        "192.168.1.50", "lb-zero.example.test", "Zero Touch 2026!"
    )


def test_the_served_certificate_is_first_boots(running: Running) -> None:
    facts = check_certificate(running.der, DEFAULT, running.fingerprint)
    assert facts.sha256 == running.fingerprint
    assert facts.subject_cn == "passerelle"
    assert set(facts.names) == {"passerelle", "192.168.1.101"}
    with pytest.raises(CheckFailed, match="not the one first boot made"):
        check_certificate(running.der, DEFAULT, "AB:CD")
    with pytest.raises(CheckFailed, match=r"not the address 192\.168\.1\.50"):
        check_certificate(running.der, Expected("192.168.1.50", "passerelle", None), None)
    with pytest.raises(CheckFailed, match="not the hostname 'lb1'"):
        check_certificate(running.der, Expected("192.168.1.101", "lb1", None), None)


def test_a_certificate_signed_by_an_authority_is_not_first_boots() -> None:
    authority = Authority.create()
    cert_pem, _ = authority.issue("passerelle", ["passerelle", "192.168.1.101"])
    der = ssl.PEM_cert_to_DER_cert(cert_pem)
    with pytest.raises(CheckFailed, match="issued by CN=Passerelle Test CA"):
        check_certificate(der, DEFAULT, None)


def test_the_api_is_reached_only_through_the_pinned_certificate(
    running: Running, tmp_path: Path
) -> None:
    assert _client(running).get_json("/api/v1/licence")["kind"] == "demo"
    other, _ = _certificate(tmp_path / "other", "passerelle", "192.168.1.101/24")
    stranger = ssl.PEM_cert_to_DER_cert(other.management_cert.read_text())
    client = ApplianceClient(
        running.api_port, "192.168.1.101", pinned_context(stranger), "admin", PASSWORD, 3
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        client.get_json("/api/v1/licence")
    # the right certificate, but the client asks for an address it does not name
    elsewhere = ApplianceClient(
        running.api_port, "192.168.1.50", pinned_context(running.der), "admin", PASSWORD, 3
    )
    with pytest.raises(ssl.SSLCertVerificationError, match=r"192\.168\.1\.50"):
        elsewhere.get_json("/api/v1/licence")


def test_first_boot_facts_hold(running: Running) -> None:
    facts = check_first_boot_facts(_client(running), DEFAULT, {"serial": SERIAL})
    assert (facts.serial, facts.hostname, facts.address) == (SERIAL, "passerelle", "192.168.1.101")
    assert (facts.licence_kind, facts.licence_days_left) == ("demo", 30)
    assert ("GET", "/api/v1/system", "192.168.1.101") in running.appliance.requests


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"serial": "ABC"}, "not PSL- and 12 base32"),
        ({"hostname": "other"}, "hostname 'other', expected 'passerelle'"),
        ({"address": "192.168.1.50/24"}, "address 192.168.1.50, expected 192.168.1.101"),
        ({"licence": {"kind": "demo", "serial": SERIAL, "days_left": 12}}, "12 days left"),
        ({"licence": {"kind": "activated", "serial": SERIAL, "days_left": 30}}, "'activated'"),
        ({"request_path": "from source: not built"}, "request path 'from source: not built'"),
    ],
)
def test_a_wrong_first_boot_fact_fails(
    running: Running, change: dict[str, Any], message: str
) -> None:
    for name, value in change.items():
        setattr(running.appliance, name, value)
    with pytest.raises(CheckFailed, match=message):
        check_first_boot_facts(_client(running), DEFAULT, {})


def test_a_serial_unlike_the_announced_one_fails(running: Running) -> None:
    with pytest.raises(CheckFailed, match="PSL-ZZZZZZZZZZZZ at first boot"):
        check_first_boot_facts(_client(running), DEFAULT, {"serial": "PSL-ZZZZZZZZZZZZ"})


def test_a_wrong_password_fails(running: Running) -> None:
    with pytest.raises(ApplianceAnswerError, match="answered 401"):
        check_first_boot_facts(_client(running, "wrong-password"), DEFAULT, {})


def test_the_virtual_service_is_created_and_carries_a_request(running: Running) -> None:
    seconds = check_virtual_service(
        _client(running), running.service_port, "192.168.1.101", timeout=5
    )
    assert seconds >= 0
    (service,) = running.appliance.services
    assert service["address"] == "192.168.1.101" and service["ports"] == [8080]
    assert service["real_servers"] == [{"address": "127.0.0.1", "port": 9900}]
    assert ("GET", "/stats", "192.168.1.101:8080") in running.appliance.requests


def test_no_answer_through_the_virtual_service_fails(running: Running) -> None:
    # a data plane that never lists the service: as if the request never reached the engine
    running.appliance.services = []
    client = _client(running)
    original = client.request

    def create_but_forget(method: str, path: str, body: object | None = None) -> Any:
        answer = original(method, path, body)
        running.appliance.services.clear()
        return answer

    client.request = create_but_forget  # type: ignore[method-assign]
    started = dt.datetime.now()
    with pytest.raises(CheckFailed, match="no answer through virtual service boot-test"):
        check_virtual_service(client, running.service_port, "192.168.1.101", timeout=1.5)
    assert dt.datetime.now() - started < dt.timedelta(seconds=10)
