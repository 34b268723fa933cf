"""Concurrent edits never lose an update, whether they come through the API or another process."""

from __future__ import annotations

from base64 import b64encode

import gevent

from passerelle.engine.manage.api.changes import edit
from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.model.errors import validate_config

from support.api_client import ADMIN_PASSWORD


def test_twenty_concurrent_additions_all_land(api, admin):
    admin.post(
        "/api/v1/virtual-services", json={"name": "web", "address": "127.0.0.1", "ports": [80]}
    )

    def add(port: int) -> int:
        client = api.client()
        answer = client.post(
            "/api/v1/virtual-services/web/real-servers",
            json={"address": "127.0.0.1", "port": port},
        )
        return answer.status_code

    jobs = [gevent.spawn(add, 9000 + i) for i in range(20)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    assert [job.value for job in jobs] == [201] * 20
    servers = api.store.current()[1].service("web").real_servers
    assert sorted(s.port for s in servers) == list(range(9000, 9020))
    assert api.version() == 21


def test_a_change_from_another_process_meanwhile_is_kept(api):
    """The command line applies between our read and our write: we recompute, not overwrite."""
    other = ConfigStore(api.store.path)  # its own connection, like `passerelle config apply`
    calls: list[int] = []

    def add_server(config: dict) -> None:
        calls.append(1)
        if len(calls) == 1:
            other.apply(validate_config({"certificates": [], "virtual_services": []}), author="cli")
            other.apply(
                validate_config(
                    {"virtual_services": [{"name": "cli", "address": "127.0.0.2", "ports": [80]}]}
                ),
                author="cli",
            )
        config["virtual_services"].append({"name": "api", "address": "127.0.0.1", "ports": [80]})

    app = api.plane.app
    with app.test_request_context(
        "/",
        headers={
            "Authorization": "Basic " + b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        },
    ):
        app.preprocess_request()
        edited, _ = edit("add api service", add_server)
    other.close()
    assert len(calls) == 2
    names = [vs.name for vs in api.store.current()[1].virtual_services]
    assert names == ["cli", "api"]
    assert edited.version == api.version()
