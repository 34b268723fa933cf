"""/api/v1/templates over the live API: list, read, export, import, preview and apply."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.engine.tls.certificates import Authority

from support.api_client import ApiClient, LiveApi, start_api

POOL = {"vip": "127.0.1.20", "front_ends": ["127.0.2.11", "127.0.2.12"]}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LiveApi]:
    live = start_api(tmp_path)
    yield live
    live.stop()


@pytest.fixture
def admin(api: LiveApi) -> ApiClient:
    return api.client()


def test_list_read_and_export(admin: ApiClient):
    listed = admin.get("/api/v1/templates")
    assert listed.status_code == 200
    names = [t["name"] for t in listed.json()]
    assert {"sfb-front-end-pool", "sfb-reverse-proxy", "exchange"} <= set(names)
    one = admin.get("/api/v1/templates/sfb-front-end-pool").json()
    assert one["builtin"] is True
    assert {"name": "vip", "kind": "address", "required": True}.items() <= one["parameters"][
        1
    ].items()
    exported = admin.get("/api/v1/templates/sfb-front-end-pool/export")
    assert exported.status_code == 200
    assert exported.headers["Content-Type"].startswith("application/yaml")
    assert exported.text.startswith("name: sfb-front-end-pool")
    missing = admin.get("/api/v1/templates/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]


def test_import_then_export_gives_the_same_text(admin: ApiClient, api: LiveApi):
    text = admin.get("/api/v1/templates/office-online-server/export").text
    mine = text.replace("name: office-online-server", "name: oos-custom", 1)
    created = admin.post("/api/v1/templates", json={"text": mine})
    assert created.status_code == 201, created.text
    assert created.json()["builtin"] is False
    assert created.headers["Location"] == "/api/v1/templates/oos-custom"
    assert admin.get("/api/v1/templates/oos-custom/export").text == mine
    assert (api.directory / "templates" / "oos-custom.yaml").read_text() == mine
    refused = admin.post("/api/v1/templates", json={"text": mine.replace("${vip}", "${nope}")})
    assert refused.status_code == 422
    assert refused.json()["field"].startswith("body.virtual_services[0]")


def test_preview_changes_nothing_and_apply_stores_one_version(admin: ApiClient, api: LiveApi):
    before = api.version()
    shown = admin.post("/api/v1/templates/sfb-front-end-pool/preview", json={"params": POOL})
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["added"] == ["sfb-fe-443", "sfb-fe-80", "sfb-fe-4443"]
    assert body["problems"] == [] and body["replaced"] == []
    assert [vs["idle_timeout"] for vs in body["virtual_services"]] == [1800.0] * 3
    assert api.version() == before
    applied = admin.post("/api/v1/templates/sfb-front-end-pool/apply", json={"params": POOL})
    assert applied.status_code == 200, applied.text
    assert applied.json()["added"] == body["added"]
    assert applied.json()["changed"] is True
    assert api.version() == before + 1
    stored = admin.get("/api/v1/virtual-services/sfb-fe-4443").json()
    assert stored["health_check"]["port"] == 5061
    assert stored["persistence"]["mode"] == "source_ip"
    # the same again is no change at all
    again = admin.post("/api/v1/templates/sfb-front-end-pool/apply", json={"params": POOL})
    assert again.json()["unchanged"] == body["added"] and again.json()["changed"] is False
    assert api.version() == before + 1


def test_collision_is_refused_naming_the_field_unless_replace(admin: ApiClient, api: LiveApi):
    assert (
        admin.post(
            "/api/v1/virtual-services",
            json={
                "name": "keep",
                "address": "127.0.9.9",
                "ports": [80],
                "real_servers": [{"address": "127.0.9.1", "port": 80}],
            },
        ).status_code
        == 201
    )
    admin.post("/api/v1/templates/sfb-front-end-pool/apply", json={"params": POOL})
    version = api.version()
    changed = {**POOL, "idle_timeout": 900}
    preview = admin.post("/api/v1/templates/sfb-front-end-pool/preview", json={"params": changed})
    assert preview.json()["replaced"] == ["sfb-fe-443", "sfb-fe-80", "sfb-fe-4443"]
    refused = admin.post("/api/v1/templates/sfb-front-end-pool/apply", json={"params": changed})
    assert refused.status_code == 409
    assert refused.json()["field"] == "virtual_services[1].name"
    assert "replace=true" in refused.json()["error"]
    assert api.version() == version
    replaced = admin.post(
        "/api/v1/templates/sfb-front-end-pool/apply", json={"params": changed, "replace": True}
    )
    assert replaced.status_code == 200
    assert replaced.json()["replaced"] == ["sfb-fe-443", "sfb-fe-80", "sfb-fe-4443"]
    names = [vs["name"] for vs in admin.get("/api/v1/virtual-services").json()]
    assert names == ["keep", "sfb-fe-443", "sfb-fe-80", "sfb-fe-4443"]  # in place
    assert admin.get("/api/v1/virtual-services/sfb-fe-80").json()["idle_timeout"] == 900


def test_bad_parameters_and_invalid_results_are_refused_whole(admin: ApiClient, api: LiveApi):
    version = api.version()
    bad = admin.post(
        "/api/v1/templates/sfb-front-end-pool/apply",
        json={"params": {**POOL, "vip": "not-an-address"}},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "parameters.vip"
    missing = admin.post("/api/v1/templates/sfb-reverse-proxy/preview", json={"params": {}})
    assert missing.status_code == 422 and missing.json()["field"].startswith("parameters.")
    admin.post("/api/v1/templates/sfb-front-end-pool/apply", json={"params": POOL})
    clash = admin.post(
        "/api/v1/templates/sfb-front-end-pool/apply", json={"params": {**POOL, "name": "two"}}
    )
    assert clash.status_code == 422
    assert clash.json()["field"] == "virtual_services[3].ports"
    assert api.version() == version + 1
    unknown = admin.post("/api/v1/templates/absent/apply", json={"params": {}})
    assert unknown.status_code == 404


def test_reverse_proxy_with_an_installed_certificate(admin: ApiClient):
    authority = Authority.create("Test CA")
    cert_pem, key_pem = authority.issue("webext.contoso.com", ["webext.contoso.com"])
    upload = {"name": "edge", "cert_pem": cert_pem, "key_pem": key_pem}
    assert admin.post("/api/v1/certificates", json=upload).status_code == 201
    params = {
        "vip": "127.0.1.10",
        "certificate": "edge",
        "webext_name": "webext.contoso.com",
        "meet_name": "meet.contoso.com",
        "dialin_name": "dialin.contoso.com",
        "lyncdiscover_name": "lyncdiscover.contoso.com",
        "pool_vip": "127.0.1.20",
    }
    absent = admin.post(
        "/api/v1/templates/sfb-reverse-proxy/apply",
        json={"params": {**params, "certificate": "other"}},
    )
    assert absent.status_code == 422 and absent.json()["field"] == "parameters.certificate"
    applied = admin.post("/api/v1/templates/sfb-reverse-proxy/apply", json={"params": params})
    assert applied.status_code == 200, applied.text
    proxy = admin.get("/api/v1/virtual-services/sfb-reverse-proxy").json()
    assert proxy["tls"]["certificates"] == ["edge"]
    assert proxy["subvs"][0]["reencrypt"]["enabled"] is True
