"""The Skype for Business reference deployment, end to end: the demo's configuration on a real
engine, sample front ends and Office Online servers, curl and Python TLS clients."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from passerelle.demo.sfb import (
    EXTERNAL_WEB_NAMES,
    OOS_NAME,
    Certificates,
    Layout,
    SampleDeployment,
    reference_config,
)

from support.engine import EngineProcess, free_port

FAST_CHECKS = {"health_interval": 0.3, "health_timeout": 0.25}


@pytest.fixture(scope="module")
def sfb(tmp_path_factory: pytest.TempPathFactory):
    """The reference deployment on its own loopback addresses and free ports."""
    base = "127.0.31"
    layout = Layout(
        rp_vip=f"{base}.10",
        hlb_vip=f"{base}.20",
        front_ends=[f"{base}.11", f"{base}.12", f"{base}.13"],
        office_online=[f"{base}.21", f"{base}.22"],
        https=free_port(),
        https_external=free_port(),
        http=free_port(),
        http_external=free_port(),
        sip_tls=free_port(),
        **FAST_CHECKS,
    )
    workdir = tmp_path_factory.mktemp("sfb")
    certs = Certificates.create(layout)
    ca_path = certs.write(workdir)
    samples = SampleDeployment(layout, certs).start()
    engine = EngineProcess(workdir).start(reference_config(layout, certs))
    for address in layout.front_ends:
        engine.wait_health("sfb-fe-4443", f"{address}:{layout.https_external}", "up")
    for address in layout.office_online:
        engine.wait_health("sfb-reverse-proxy", f"{address}:{layout.https}", "up", "office-online")
    engine.wait_health(
        "sfb-reverse-proxy", f"{layout.hlb_vip}:{layout.https_external}", "up", "fe-external-web"
    )
    yield layout, engine, samples, ca_path
    engine.stop()
    samples.stop()


def curl(layout: Layout, ca_path: Path, host: str, path: str = "/", *extra: str) -> dict:
    url = f"https://{host}:{layout.https}{path}"
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            str(ca_path),
            "--resolve",
            f"{host}:{layout.https}:{layout.rp_vip}",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_host_switching_reencryption_and_original_host(sfb):
    layout, _engine, _samples, ca_path = sfb
    for name in EXTERNAL_WEB_NAMES:
        seen = curl(layout, ca_path, name, "/abs/handler.ashx")
        # Front-end external web services, reached through the internal HLB VIP on 4443.
        assert seen["server"].endswith(f"-{layout.https_external}")
        assert seen["tls"] is True  # re-encrypted to the back end
        assert seen["host"] == f"{name}:{layout.https}"  # original Host passed through
        assert seen["path"] == "/abs/handler.ashx"
        assert seen["headers"]["x-forwarded-proto"] == "https"
    oos = curl(layout, ca_path, OOS_NAME, "/hosting/discovery")
    assert oos["server"].startswith("oos") and oos["tls"]
    assert oos["host"] == f"{OOS_NAME}:{layout.https}"


def test_unknown_host_gets_a_clear_answer_not_a_random_server(sfb):
    layout, _engine, _samples, _ca_path = sfb
    result = subprocess.run(
        # -k: the edge certificate rightly does not cover a name nobody published
        [
            "curl",
            "-sS",
            "-k",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--resolve",
            f"unknown.contoso.com:{layout.https}:{layout.rp_vip}",
            f"https://unknown.contoso.com:{layout.https}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "404"
    assert "No service is configured" in body


def test_openssl_sees_the_edge_certificate_and_tls12_minimum(sfb):
    layout, _engine, _samples, ca_path = sfb
    ok = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{layout.rp_vip}:{layout.https}",
            "-servername",
            "meet.contoso.com",
            "-CAfile",
            str(ca_path),
            "-verify_return_error",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert "Verify return code: 0 (ok)" in ok.stdout
    assert "webext.contoso.com" in ok.stdout
    old = subprocess.run(
        ["openssl", "s_client", "-connect", f"{layout.rp_vip}:{layout.https}", "-tls1_1"],
        input="",
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert old.returncode != 0


def _tls_get(address: str, port: int, source: str, host: str = "pool.contoso.local") -> dict:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(
        address, port, context=context, timeout=5, source_address=(source, 0)
    )
    conn.request("GET", "/", headers={"Host": host})
    body = conn.getresponse().read()
    conn.close()
    return json.loads(body)


def test_internal_hlb_keeps_each_source_address_on_one_front_end(sfb):
    layout, _engine, _samples, _ca = sfb
    chosen = {}
    for source in ("127.0.41.1", "127.0.41.2", "127.0.41.3", "127.0.41.4"):
        servers = {_tls_get(layout.hlb_vip, layout.https, source)["server"] for _ in range(4)}
        assert len(servers) == 1, f"{source} was spread over {servers}"
        chosen[source] = servers.pop()
    # L4 with TLS passing through: the front end itself terminated TLS on 443.
    assert all(name.endswith(f"-{layout.https}") for name in chosen.values())


def test_office_online_source_persistence_through_the_reverse_proxy(sfb):
    layout, _engine, _samples, ca_path = sfb
    for source in ("127.0.42.1", "127.0.42.2"):
        servers = {
            curl(layout, ca_path, OOS_NAME, "/", "--interface", source)["server"] for _ in range(4)
        }
        assert len(servers) == 1


def test_health_check_on_the_sip_port_takes_a_front_end_out_and_back(sfb):
    layout, engine, samples, _ca = sfb
    victim = layout.front_ends[0]
    key = f"{victim}:{layout.https}"
    sip = samples.sip_port(victim)
    sip.stop()
    try:
        started = time.monotonic()
        engine.wait_health("sfb-fe-443", key, "down", timeout=5)
        took = time.monotonic() - started
        # retries (2) x interval (0.3 s) plus one probe's timeout and some scheduling slack
        assert took < 2.0, took
        # Web port still answers, but the front end is out: nobody is sent there.
        served = Counter(
            _tls_get(layout.hlb_vip, layout.https, f"127.0.43.{i}")["server"] for i in range(1, 13)
        )
        assert not any(name.startswith("fe1-") for name in served), served
    finally:
        sip.start()
    engine.wait_health("sfb-fe-443", key, "up", timeout=5)


def test_idle_timeout_setting_is_1800_seconds_in_the_reference(sfb):
    _layout, engine, _samples, _ca = sfb
    exported = engine.store.current()[1]
    for name in ("sfb-fe-443", "sfb-fe-80", "sfb-fe-4443", "sfb-reverse-proxy"):
        assert exported.service(name).idle_timeout == 1800


def test_port_80_forwards_to_the_front_ends_8080(sfb):
    layout, _engine, _samples, _ca = sfb
    conn = http.client.HTTPConnection(layout.rp_vip, layout.http, timeout=5)
    conn.request("GET", "/", headers={"Host": "webext.contoso.com"})
    seen = json.loads(conn.getresponse().read())
    assert seen["server"].endswith(f"-{layout.http_external}")
    conn.close()


def test_hlb_relays_plain_http_on_80(sfb):
    layout, _engine, _samples, _ca = sfb
    with socket.create_connection((layout.hlb_vip, layout.http), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: pool\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert f"-{layout.http}".encode() in data
