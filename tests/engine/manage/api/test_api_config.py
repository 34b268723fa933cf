"""Configuration as a whole through the API: export, import, history, diff and rollback."""

from __future__ import annotations

import json

import yaml

CONFIG = "/api/v1/config"


def whole(port: int = 8080, servers: int = 1) -> dict:
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": "127.0.0.1",
                "ports": [port],
                "real_servers": [
                    {"address": "127.0.0.1", "port": 9000 + i} for i in range(servers)
                ],
            }
        ]
    }


def test_import_then_export_as_json_and_yaml(api, admin):
    imported = admin.put(CONFIG, json=whole())
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"version": 1, "changed": True}
    assert admin.put(CONFIG, json=whole()).json() == {"version": 1, "changed": False}

    exported = admin.get(CONFIG)
    assert exported.headers["Content-Type"].startswith("application/json")
    assert exported.headers["ETag"] == '"1"'
    assert json.loads(exported.content) == whole()  # defaults left out, like a hand-written file
    as_yaml = admin.get(f"{CONFIG}?format=yaml")
    assert as_yaml.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == whole()
    full = admin.get(f"{CONFIG}?defaults=true").json()
    assert full["virtual_services"][0]["idle_timeout"] == 660.0
    assert admin.get(f"{CONFIG}?format=xml").json()["field"] == "format"


def test_invalid_import_changes_nothing(api, admin):
    admin.put(CONFIG, json=whole())
    bad = admin.put(CONFIG, json=whole(port=0))
    assert bad.status_code == 422
    assert bad.json()["field"] == "virtual_services[0].ports[0]"
    unknown = admin.put(CONFIG, json={"virtual_services": [], "typo": 1})
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "typo"
    assert api.version() == 1


def test_history_versions_diff_and_rollback(api, admin):
    admin.put(CONFIG, json=whole(servers=1))
    admin.put(CONFIG, json=whole(servers=2))
    history = admin.get(f"{CONFIG}/history").json()
    assert [v["number"] for v in history] == [2, 1]
    assert history[0]["author"] == "admin"
    assert history[0]["comment"] == "import configuration"

    first = admin.get(f"{CONFIG}/versions/1").json()
    assert first["version"]["number"] == 1
    assert len(first["config"]["virtual_services"][0]["real_servers"]) == 1
    assert admin.get(f"{CONFIG}/versions/99").status_code == 404
    assert admin.get(f"{CONFIG}/versions/abc").status_code == 404

    diff = admin.get(f"{CONFIG}/diff?from=1&to=2").json()
    assert diff["from_version"] == 1 and diff["to_version"] == 2
    assert "+    port: 9001" in diff["diff"]
    assert admin.get(f"{CONFIG}/diff?from=1&to=7").status_code == 404
    assert admin.get(f"{CONFIG}/diff?from=x").json()["field"] == "from"

    rolled = admin.post(f"{CONFIG}/rollback/1")
    assert rolled.status_code == 200
    assert rolled.json() == {"version": 3, "changed": True}
    assert len(api.store.current()[1].virtual_services[0].real_servers) == 1
    assert admin.post(f"{CONFIG}/rollback/42").status_code == 404


def test_diff_never_shows_a_private_key(api, admin):
    from passerelle.engine.tls.certificates import make_self_signed

    cert, key = make_self_signed("a.test", ["a.test"])
    admin.post("/api/v1/certificates", json={"name": "a", "cert_pem": cert, "key_pem": key})
    diff = admin.get(f"{CONFIG}/diff?from=0&to=1").json()["diff"]
    assert "BEGIN CERTIFICATE" in diff
    assert "PRIVATE KEY" not in diff
    assert "redacted sha256:" in diff


def test_backup_restored_on_a_fresh_store_reproduces_the_configuration(api, admin, tmp_path):
    from passerelle.demo.sfb import Certificates, Layout, reference_config

    from support.api_client import start_api

    layout = Layout()
    rich = reference_config(layout, Certificates.create(layout))  # TLS, SubVSs, persistence
    assert admin.put(CONFIG, json=rich).status_code == 200
    backup = admin.get(f"{CONFIG}?defaults=true")
    assert backup.status_code == 200
    fresh = start_api(tmp_path / "fresh")
    try:
        restored = fresh.client().put(CONFIG, json=json.loads(backup.content))
        assert restored.status_code == 200, restored.text
        assert fresh.store.current()[1] == api.store.current()[1]
    finally:
        fresh.stop()
