"""Building a worker's services loads no cryptography, TLS offload included (SNI names come
from the ssl module); only re-encryption with a CA of its own inspects that CA with it.

Each case runs in a new interpreter: this test process has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys

from passerelle.engine.tls.certificates import make_self_signed

BUILD = """
import json, sys
from pathlib import Path
from passerelle.engine.model.config import Config
from passerelle.engine.runtime.services import build_services
from passerelle.engine.stats.counters import CounterTable

table = CounterTable(Path(sys.argv[2]), 1, create=True)
services = build_services(
    Config.model_validate(json.loads(sys.argv[1])), lambda key: 0, table, authority=None
)
print(json.dumps({
    "tls_server": [s.tls_server is not None for s in services.values()],
    "cryptography": sorted(m for m in sys.modules if m.startswith("cryptography")),
}))
"""


def build(config: dict, tmp_path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", BUILD, json.dumps(config), str(tmp_path / "counters")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def service(**extra: object) -> dict:
    return {
        "name": "web",
        "address": "127.0.0.1",
        "ports": [8080],
        "real_servers": [{"address": "127.0.0.1", "port": 9000}],
        **extra,
    }


def test_plain_services_leave_cryptography_unloaded(tmp_path):
    built = build({"virtual_services": [service()]}, tmp_path)
    assert built == {"tls_server": [False], "cryptography": []}


def test_tls_offload_builds_the_context_without_loading_it(tmp_path):
    # The worker reads the SNI names through the ssl module; cryptography is the supervisor's.
    cert_pem, key_pem = make_self_signed("www.example.com", ["www.example.com"])
    config = {
        "certificates": [{"name": "site", "cert_pem": cert_pem, "key_pem": key_pem}],
        "virtual_services": [service(tls={"certificates": ["site"]})],
    }
    built = build(config, tmp_path)
    assert built == {"tls_server": [True], "cryptography": []}
