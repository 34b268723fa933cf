"""A whole-configuration import or rollback never takes an appliance out of its HA pair."""

from __future__ import annotations

import subprocess
import sys

from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.model import validate_config

HA = {
    "node": "a",
    "local_address": "10.77.0.11",
    "peer_address": "10.77.0.12",
    "interface": "eth0",
    "auth_secret": "s3cret-pair-key-0123",
    "shared_addresses": ["10.77.0.100/24"],
}
SERVICE = {"name": "web", "address": "10.77.0.100", "ports": [80]}


def test_config_apply_without_ha_keeps_this_appliances_ha(tmp_path):
    db = tmp_path / "passerelle.db"
    store = ConfigStore(db)
    store.apply(validate_config({"ha": HA, "virtual_services": [SERVICE]}))
    backup = tmp_path / "backup.yaml"
    backup.write_text(
        "virtual_services:\n  - {name: web, address: 10.77.0.100, ports: [80, 8080]}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "passerelle", "config", "apply", str(backup), "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    _, config = store.current()
    assert config.service("web").ports == [80, 8080]
    assert config.ha is not None and config.ha.peer_address == "10.77.0.12"


def test_rollback_keeps_the_current_ha_settings(tmp_path):
    store = ConfigStore(tmp_path / "passerelle.db")
    first = store.apply(validate_config({"virtual_services": [SERVICE]}))
    store.apply(validate_config({"ha": HA, "virtual_services": [SERVICE]}))
    store.rollback(first.number)
    assert store.current()[1].ha is not None
