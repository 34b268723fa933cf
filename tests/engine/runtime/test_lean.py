"""The engine's processes start without plugin discovery (engine/runtime/lean.py), and gevent
and pydantic still work."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import sys
import passerelle.engine.manage.daemon
import passerelle.engine.runtime.worker
from gevent import socket as gsocket
from passerelle.engine.model.errors import validate_config

config = validate_config({"virtual_services": [{
    "name": "web", "address": "127.0.0.1", "ports": [8080],
    "real_servers": [{"address": "127.0.0.1", "port": 9000}],
}]})
import socket
print(config.virtual_services[0].name, socket.socket is gsocket.socket,
      "importlib.metadata" in sys.modules)
"""


def test_the_engine_starts_without_reading_distribution_metadata():
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["web", "True", "False"]
