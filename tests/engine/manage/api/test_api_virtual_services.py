"""Virtual services, their real servers and SubVSs through the API, over real HTTPS."""

from __future__ import annotations

from urllib.parse import unquote

VS = "/api/v1/virtual-services"


def service(name: str = "web", port: int = 8080, **extra) -> dict:
    return {
        "name": name,
        "address": "127.0.0.1",
        "ports": [port],
        "real_servers": [{"address": "127.0.0.1", "port": 9001}],
        **extra,
    }


def test_virtual_service_round_trip(api, admin):
    assert admin.get(VS).json() == []
    created = admin.post(VS, json=service())
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{VS}/web"
    assert created.headers["ETag"] == f'"{api.version()}"'
    assert created.json()["real_servers"][0]["port"] == 9001

    listed = admin.get(VS)
    assert [vs["name"] for vs in listed.json()] == ["web"]
    one = admin.get(f"{VS}/web")
    assert one.json()["ports"] == [8080]
    assert one.headers["ETag"] == created.headers["ETag"]

    replaced = admin.put(f"{VS}/web", json=service(port=8081, idle_timeout=1800))
    assert replaced.status_code == 200, replaced.text
    assert api.store.current()[1].service("web").ports == [8081]
    assert api.store.current()[1].service("web").idle_timeout == 1800

    assert admin.post(f"{VS}/web/disable").json()["enabled"] is False
    assert api.store.current()[1].service("web").enabled is False
    assert admin.post(f"{VS}/web/enable").json()["enabled"] is True

    assert admin.delete(f"{VS}/web").status_code == 204
    assert admin.get(f"{VS}/web").status_code == 404
    assert api.store.current()[1].virtual_services == []


def test_duplicate_and_unknown_names_are_refused(admin):
    admin.post(VS, json=service())
    again = admin.post(VS, json=service(port=9090))
    assert again.status_code == 409
    assert again.json()["field"] == "name"
    missing = admin.put(f"{VS}/nope", json=service("nope"))
    assert missing.status_code == 404
    assert missing.json()["error"]
    renamed = admin.put(f"{VS}/web", json=service("other"))
    assert renamed.status_code == 422
    assert renamed.json()["field"] == "name"
    assert admin.delete(f"{VS}/nope").status_code == 404


def test_invalid_change_names_the_field_and_stores_nothing(api, admin):
    admin.post(VS, json=service())
    before = api.version()

    bad_port = admin.post(f"{VS}/web/real-servers", json={"address": "127.0.0.1", "port": 70000})
    assert bad_port.status_code == 422
    assert bad_port.json()["field"] == "port"

    # valid on its own, invalid in the whole: a second service on the same address and port
    clash = admin.post(VS, json=service("second"))
    assert clash.status_code == 422
    assert clash.json()["field"] == "virtual_services[1].ports"

    not_json = admin.post(VS, data=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert set(not_json.json()) >= {"error", "field"}
    assert api.version() == before


def test_if_match_detects_someone_elses_change(api, admin):
    etag = admin.post(VS, json=service()).headers["ETag"]
    assert admin.post(VS, json=service("other", port=8082)).status_code == 201  # someone else

    stale = admin.put(f"{VS}/web", json=service(port=8090), headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["field"] == "If-Match"
    assert api.store.current()[1].service("web").ports == [8080]
    assert admin.delete(f"{VS}/web", headers={"If-Match": etag}).status_code == 412

    fresh = admin.get(f"{VS}/web").headers["ETag"]
    ok = admin.put(f"{VS}/web", json=service(port=8090), headers={"If-Match": fresh})
    assert ok.status_code == 200
    assert ok.headers["ETag"] == f'"{api.version()}"'
    assert admin.delete(f"{VS}/web", headers={"If-Match": ok.headers["ETag"]}).status_code == 204


def test_real_servers_round_trip_and_states(api, admin):
    admin.post(VS, json=service())
    base = f"{VS}/web/real-servers"
    added = admin.post(base, json={"address": "127.0.0.1", "port": 9002, "weight": 5})
    assert added.status_code == 201, added.text
    assert added.headers["Location"] == f"{base}/127.0.0.1:9002"
    assert admin.post(base, json={"address": "127.0.0.1", "port": 9002}).status_code == 409
    assert [s["port"] for s in admin.get(base).json()] == [9001, 9002]
    assert admin.get(f"{base}/127.0.0.1:9002").json()["weight"] == 5

    for verb, state in (("drain", "draining"), ("disable", "disabled"), ("enable", "enabled")):
        answer = admin.post(f"{base}/127.0.0.1:9002/{verb}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == state
        stored = api.store.current()[1].service("web").real_servers[1]
        assert stored.state == state

    replaced = admin.put(f"{base}/127.0.0.1:9002", json={"address": "127.0.0.1", "port": 9003})
    assert replaced.status_code == 200
    assert admin.get(f"{base}/127.0.0.1:9002").status_code == 404
    assert admin.delete(f"{base}/127.0.0.1:9003").status_code == 204
    assert admin.delete(f"{base}/127.0.0.1:9003").status_code == 404
    assert admin.get(f"{base}/not-a-server").status_code == 404
    assert admin.get(f"{VS}/nope/real-servers").status_code == 404


def test_ipv6_real_server_keys(api, admin):
    admin.post(VS, json=service())
    base = f"{VS}/web/real-servers"
    added = admin.post(base, json={"address": "::1", "port": 9443})
    assert unquote(added.headers["Location"]).endswith("/[::1]:9443")
    assert admin.post(f"{base}/[0:0::1]:9443/drain").json()["state"] == "draining"


def test_subvs_and_their_real_servers(api, admin):
    admin.post(VS, json=service(real_servers=[]))
    subs = f"{VS}/web/subvs"
    owa = {"name": "owa", "rules": [{"path_prefix": "/owa"}]}
    created = admin.post(subs, json=owa)
    assert created.status_code == 201, created.text
    assert admin.post(subs, json=owa).status_code == 409
    assert admin.post(subs, json={"name": "rest"}).status_code == 201
    assert [s["name"] for s in admin.get(subs).json()] == ["owa", "rest"]

    servers = f"{subs}/owa/real-servers"
    assert admin.post(servers, json={"address": "127.0.0.1", "port": 9100}).status_code == 201
    assert admin.post(f"{servers}/127.0.0.1:9100/drain").json()["state"] == "draining"
    stored = api.store.current()[1].service("web").subvs[0]
    assert stored.real_servers[0].state == "draining"

    changed = admin.put(f"{subs}/owa", json={**owa, "scheduling": "least_connection"})
    assert changed.status_code == 200
    assert changed.json()["real_servers"] == []  # PUT replaces the whole SubVS
    assert admin.get(f"{subs}/rest").json()["name"] == "rest"

    # a service with SubVSs sends traffic only to them: the model refuses its own servers
    own = admin.post(f"{VS}/web/real-servers", json={"address": "127.0.0.1", "port": 9200})
    assert own.status_code == 422
    assert own.json()["field"] == "virtual_services[0].real_servers"

    assert admin.delete(f"{subs}/owa").status_code == 204
    assert admin.get(f"{subs}/owa").status_code == 404
    assert admin.get(f"{subs}/owa/real-servers").status_code == 404
