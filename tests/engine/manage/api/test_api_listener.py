"""The management listener and its first start: HTTPS only, its own certificate, no default
password, never on a virtual service's address; live figures from the engine's providers."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import sys

import pytest

from passerelle.engine.manage.api.bootstrap import (
    INITIAL_PASSWORD_FILE,
    RESET_FILE,
    apply_password_reset,
    initial_admin,
)
from passerelle.engine.manage.api.listener import clash
from passerelle.engine.manage.users import UserStore, write_secret_file
from passerelle.engine.model.errors import validate_config

from support.api_client import ADMIN_PASSWORD, FAST_HASHER, start_api
from support.engine import free_port


def test_plain_http_gets_no_answer_and_tls_presents_the_generated_certificate(api):
    port = int(api.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = plain.recv(4096)
        except ConnectionResetError:
            answer = b""
        assert b"200" not in answer
    context = ssl.create_default_context(cafile=str(api.certificate))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert api.client().get("/api/v1/health").status_code == 200  # the bad client hurt nothing
    assert (api.directory / "management.key").stat().st_mode & 0o077 == 0


def test_statistics_status_and_metrics_come_from_the_engine(tmp_path):
    rows = [{"name": "web", "active": 3, "real_servers": []}]
    live = start_api(
        tmp_path,
        stats=lambda: rows,
        status=lambda: {"version": 7},
        metrics=lambda: "passerelle_up 1\n",
    )
    try:
        admin = live.client()
        assert admin.get("/api/v1/statistics").json() == {"virtual_services": rows}
        assert admin.get("/api/v1/status").json() == {"status": {"version": 7}}
        metrics = admin.get("/metrics")
        assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert metrics.text == "passerelle_up 1\n"
        assert live.anonymous().get("/metrics").status_code == 401
    finally:
        live.stop()


def test_first_admin_password_is_supplied_or_generated_never_a_default(tmp_path):
    users = UserStore(tmp_path / "a.db", hasher=FAST_HASHER)
    generated = initial_admin(users, tmp_path, environ={})
    assert generated is not None and len(generated) >= 20
    written = tmp_path / INITIAL_PASSWORD_FILE
    assert written.read_text() == generated + "\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert users.verify_password("admin", generated) is not None
    assert initial_admin(users, tmp_path, environ={}) is None  # only when there is no user

    other = UserStore(tmp_path / "b.db", hasher=FAST_HASHER)
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-123\n")
    assert initial_admin(other, tmp_path / "nowhere", password_file=secret) is None
    assert other.verify_password("admin", "from-a-file-123") is not None

    third = UserStore(tmp_path / "c.db", hasher=FAST_HASHER)
    env = {"PASSERELLE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    assert initial_admin(third, tmp_path / "nowhere", environ=env) is None
    assert third.verify_password("admin", ADMIN_PASSWORD) is not None


@pytest.mark.parametrize(
    ("management", "vs_address", "expected"),
    [
        (("127.0.0.1", 8443), "127.0.0.1", "web"),
        (("0.0.0.0", 8443), "127.0.0.5", "web"),
        (("127.0.0.1", 8443), "0.0.0.0", "web"),
        (("127.0.0.1", 8443), "127.0.0.2", None),
        (("127.0.0.1", 9443), "127.0.0.1", None),
    ],
)
def test_clash_with_a_virtual_service(management, vs_address, expected):
    config = validate_config(
        {"virtual_services": [{"name": "web", "address": vs_address, "ports": [8443]}]}
    )
    assert clash(*management, config) == expected


def test_api_refuses_a_virtual_service_on_the_management_address(tmp_path):
    live = start_api(tmp_path)
    try:
        port = int(live.url.rsplit(":", 1)[1])
        live.plane.app.extensions["passerelle"].reserved = (("127.0.0.1", port),)
        answer = live.client().post(
            "/api/v1/virtual-services",
            json={"name": "web", "address": "127.0.0.1", "ports": [port]},
        )
        assert answer.status_code == 422
        assert answer.json()["field"] == "virtual_services[0].ports"
        assert live.version() == 0
    finally:
        live.stop()


def test_engine_refuses_to_start_with_management_on_a_vip(tmp_path):
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"virtual_services:\n  - name: web\n    address: 127.0.0.1\n    ports: [{port}]\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "passerelle",
            "engine",
            "--db",
            str(tmp_path / "p.db"),
            "--config",
            str(config),
            "--workers",
            "1",
            "--admin",
            "off",
            "--management",
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PASSERELLE_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    assert result.returncode != 0
    assert "virtual service 'web'" in result.stderr


def test_console_password_reset_file_sets_admin_and_ends_its_sessions(api):
    browser = api.anonymous()
    login = browser.post("/api/v1/session", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status_code == 201
    (api.directory / INITIAL_PASSWORD_FILE).write_text("shown-on-console\n")
    reset = api.directory / RESET_FILE
    write_secret_file(reset, "from-the-console-1\r\n")

    assert apply_password_reset(api.plane.users, api.directory)
    assert not reset.exists()
    assert not (api.directory / INITIAL_PASSWORD_FILE).exists()
    assert browser.get("/api/v1/session").status_code == 401
    assert api.client().get("/api/v1/users").status_code == 401
    assert api.client(auth=("admin", "from-the-console-1")).get("/api/v1/users").status_code == 200

    write_secret_file(reset, "short\n")  # refused, and not retried forever
    assert apply_password_reset(api.plane.users, api.directory)
    assert not reset.exists()
    assert not apply_password_reset(api.plane.users, api.directory)


def test_changing_admins_password_retires_the_initial_one(api, admin):
    initial = api.directory / INITIAL_PASSWORD_FILE
    initial.write_text(ADMIN_PASSWORD + "\n")
    admin.post("/api/v1/users", json={"name": "operator", "password": "op-password-1"})
    admin.put("/api/v1/users/operator/password", json={"password": "op-password-2"})
    assert initial.exists()  # someone else's password: the console's admin one still holds
    changed = admin.put(
        "/api/v1/users/admin/password",
        json={"password": "a-new-admin-password", "current_password": ADMIN_PASSWORD},
    )
    assert changed.status_code == 204
    assert not initial.exists()


FIRST_REQUEST = """
import json, ssl, sys, urllib.request
from pathlib import Path
from gevent import monkey
monkey.patch_all()
from passerelle.engine.manage.api.plane import ManagementPlane
from passerelle.engine.manage.store import ConfigStore

directory = Path(sys.argv[1])
plane = ManagementPlane(ConfigStore(directory / "passerelle.db"), "127.0.0.1", 0)
assert plane.start()
loaded = {"at_start": "flask" in sys.modules}
context = ssl.create_default_context(cafile=str(plane.certificate))
with urllib.request.urlopen(plane.url + "/api/v1/health", context=context, timeout=10) as answer:
    loaded["status"] = answer.status
loaded["after_a_request"] = "flask" in sys.modules
plane.stop()
print(json.dumps(loaded))
"""


def test_the_web_framework_loads_with_the_first_request_not_at_start(tmp_path):
    # A new interpreter: this test process has imported Flask already.
    result = subprocess.run(
        [sys.executable, "-c", FIRST_REQUEST, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"at_start": False, "status": 200, "after_a_request": True}
