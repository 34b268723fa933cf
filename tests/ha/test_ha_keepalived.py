"""keepalived.conf from the model, checked by keepalived itself when it is installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from passerelle.engine.ha.keepalived import Commands, render, shared_addresses, write_helper
from passerelle.engine.model import HASettings, validate_config

SETTINGS = HASettings(
    node="b",
    local_address="10.0.0.12",
    peer_address="10.0.0.11",
    interface="eth1",
    virtual_router_id=42,
    auth_secret="s3cret-s3cret-s3cret",
    advert_interval=0.2,
    shared_addresses=["10.0.0.100/24"],
)


def commands(tmp_path: Path, check: str | None = "http://127.0.0.1:9900/healthz") -> Commands:
    return Commands(tmp_path / "ha-state", check, write_helper(tmp_path))


def test_render_one_backup_instance_unicast_to_the_peer(tmp_path):
    text = render(SETTINGS, ["10.0.0.100/24"], commands(tmp_path))
    assert "    state BACKUP\n" in text
    assert "    nopreempt\n" in text
    assert "    priority 100\n" in text
    assert "    virtual_router_id 42\n" in text
    assert "    advert_int 0.2\n    version 3\n" in text
    assert "    unicast_src_ip 10.0.0.12\n    unicast_peer {\n        10.0.0.11\n" in text
    assert "        10.0.0.100/24 dev eth1\n" in text
    assert "track_script {\n        passerelle_engine\n" in text
    assert "notify_master" in text and "notify_fault" in text and "notify_stop" in text
    assert "s3cret" not in text  # the secret is for replication only


def test_preempt_and_no_track_script(tmp_path):
    settings = SETTINGS.model_copy(update={"preempt": True})
    text = render(settings, [], commands(tmp_path, check=None))
    assert "nopreempt" not in text and "vrrp_script" not in text


def test_shared_addresses_default_to_the_virtual_service_addresses():
    config = validate_config(
        {
            "virtual_services": [
                {"name": "a", "address": "10.0.0.100", "ports": [80]},
                {"name": "b", "address": "10.0.0.100", "ports": [443]},
                {"name": "c", "address": "0.0.0.0", "ports": [8080]},
                {"name": "d", "address": "10.0.0.101", "ports": [80]},
            ]
        }
    )
    bare = SETTINGS.model_copy(update={"shared_addresses": []})
    assert shared_addresses(bare, config) == ["10.0.0.100/32", "10.0.0.101/32"]
    assert shared_addresses(SETTINGS, config) == ["10.0.0.100/24"]


def test_helper_runs_notify_with_this_interpreter(tmp_path):
    helper = write_helper(tmp_path)
    state = tmp_path / "state"
    done = subprocess.run(
        [str(helper), "notify", "--state-file", str(state), "--peer", "10.0.0.11", "MASTER"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert state.read_text() == "active (peer 10.0.0.11)\n"


@pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed")
def test_keepalived_accepts_the_configuration(tmp_path):
    conf = tmp_path / "keepalived.conf"
    # keepalived checks that the interface exists (and is not loopback); it sends nothing here
    names = [name for _, name in socket.if_nameindex() if name != "lo"]
    if not names:
        pytest.skip("no network interface to name in the configuration")
    existing = SETTINGS.model_copy(update={"interface": names[0]})
    conf.write_text(render(existing, ["10.0.0.100/24"], commands(tmp_path)))
    done = subprocess.run(
        ["keepalived", "--config-test", "--use-file", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
