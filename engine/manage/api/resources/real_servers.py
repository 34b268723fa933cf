"""Real servers of a virtual service or of one of its SubVSs; enable, disable, drain.

The same operations exist at two places:
``/api/v1/virtual-services/{name}/real-servers`` and
``/api/v1/virtual-services/{name}/subvs/{sub}/real-servers``; a server is addressed as
``address:port`` (``[v6]:port`` for IPv6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response

from passerelle.engine.manage.api import locate
from passerelle.engine.manage.api.bodies import empty, json_object, parse, reply
from passerelle.engine.manage.api.changes import Edited, current, edit
from passerelle.engine.manage.api.errors import ApiError, not_found
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.model.config import Pool, RealServer

SERVICE = "/api/v1/virtual-services/{name}"
STATES = {"enable": "enabled", "disable": "disabled", "drain": "draining"}

resource = Resource("real_servers", "real servers")


def _pool_model(name: str, sub: str | None) -> Pool:
    _, config = current()
    try:
        vs = config.service(name)
    except KeyError:
        raise not_found(f"virtual service named {name!r}") from None
    if sub is None:
        return vs
    for pool in vs.subvs:
        if pool.name == sub:
            return pool
    raise not_found(f"SubVS named {sub!r} in virtual service {name!r}")


def _where(name: str, sub: str | None) -> str:
    return f"virtual service {name}" + (f" SubVS {sub}" if sub else "")


def _server_reply(edited: Edited, name: str, sub: str | None, key: str, status: int) -> Response:
    vs = edited.config.service(name)
    pool: Pool = vs if sub is None else next(p for p in vs.subvs if p.name == sub)
    server = next(s for s in pool.real_servers if s.key == key)
    return reply(server.model_dump(mode="json"), status, etag=edited.version)


def list_servers(name: str, sub: str | None) -> Response:
    number, _ = current()
    servers = _pool_model(name, sub).real_servers
    return reply([s.model_dump(mode="json") for s in servers], etag=number)


def add_server(name: str, sub: str | None) -> Response:
    server = parse(RealServer, json_object())

    def add(config: dict[str, Any]) -> None:
        pool = locate.pool(config, name, sub)
        taken = {(s["address"], s["port"]) for s in pool["real_servers"]}
        if (server.address, server.port) in taken:
            raise ApiError(409, f"{server.key} is already a real server here", "address")
        pool["real_servers"].append(server.model_dump(mode="json"))

    edited, _ = edit(f"add real server {server.key} to {_where(name, sub)}", add)
    response = _server_reply(edited, name, sub, server.key, 201)
    base = SERVICE.format(name=name) + (f"/subvs/{sub}" if sub else "")
    response.headers["Location"] = f"{base}/real-servers/{server.key}"
    return response


def get_server(name: str, sub: str | None, server: str) -> Response:
    number, _ = current()
    wanted = locate.parse_server_key(server)
    for candidate in _pool_model(name, sub).real_servers:
        if wanted == (candidate.address, candidate.port):
            return reply(candidate.model_dump(mode="json"), etag=number)
    raise not_found(f"real server {server!r} in {_where(name, sub)}")


def replace_server(name: str, sub: str | None, server: str) -> Response:
    new = parse(RealServer, json_object())

    def replace(config: dict[str, Any]) -> None:
        pool = locate.pool(config, name, sub)
        pool["real_servers"][locate.server_index(pool, server)] = new.model_dump(mode="json")

    edited, _ = edit(f"replace real server {server} in {_where(name, sub)}", replace)
    return _server_reply(edited, name, sub, new.key, 200)


def delete_server(name: str, sub: str | None, server: str) -> Response:
    def remove(config: dict[str, Any]) -> None:
        pool = locate.pool(config, name, sub)
        del pool["real_servers"][locate.server_index(pool, server)]

    edited, _ = edit(f"remove real server {server} from {_where(name, sub)}", remove)
    return empty(etag=edited.version)


def set_state(name: str, sub: str | None, server: str, verb: str) -> Response:
    key: list[str] = []

    def switch(config: dict[str, Any]) -> None:
        pool = locate.pool(config, name, sub)
        entry = pool["real_servers"][locate.server_index(pool, server)]
        entry["state"] = STATES[verb]
        key.append(locate.server_key(entry["address"], entry["port"]))

    edited, _ = edit(f"{verb} real server {server} in {_where(name, sub)}", switch)
    return _server_reply(edited, name, sub, key[-1], 200)


def _register(prefix: str, in_subvs: bool) -> None:
    """The routes under ``prefix``; views take ``sub`` from the path only for SubVSs."""
    suffix = "_in_subvs" if in_subvs else ""
    where = "a SubVS" if in_subvs else "a virtual service"
    many = prefix + "/real-servers"
    one = many + "/{server}"

    def view(function: Callable[..., Response], label: str) -> Callable[..., Response]:
        def handler(name: str, sub: str | None = None, **kwargs: Any) -> Response:
            return function(name, sub, **kwargs)

        handler.__name__ = f"{label}{suffix}"
        return handler

    routes: list[tuple[str, str, str, Callable[..., Response], dict[str, Any]]] = [
        (
            "GET",
            many,
            f"List the real servers of {where}",
            view(list_servers, "list"),
            {"response": RealServer, "many": True, "errors": (404,), "etag": True},
        ),
        (
            "POST",
            many,
            f"Add a real server to {where}",
            view(add_server, "add"),
            {
                "body": RealServer,
                "response": RealServer,
                "status": 201,
                "errors": (404, 409, 412, 422),
                "etag": True,
            },
        ),
        (
            "GET",
            one,
            "Read a real server",
            view(get_server, "get"),
            {"response": RealServer, "errors": (404,), "etag": True},
        ),
        (
            "PUT",
            one,
            "Replace a real server",
            view(replace_server, "replace"),
            {"body": RealServer, "response": RealServer, "errors": (404, 412, 422), "etag": True},
        ),
        (
            "DELETE",
            one,
            "Remove a real server",
            view(delete_server, "delete"),
            {"status": 204, "errors": (404, 412, 422), "etag": True},
        ),
    ]
    for verb, state in STATES.items():

        def change(name: str, sub: str | None, server: str, verb: str = verb) -> Response:
            return set_state(name, sub, server, verb)

        routes.append(
            (
                "POST",
                f"{one}/{verb}",
                f"Set a real server's state to {state}",
                view(change, verb),
                {"response": RealServer, "errors": (404, 412, 422), "etag": True},
            )
        )
    for method, path, summary, handler, options in routes:
        resource.route(method, path, summary, **options)(handler)


_register(SERVICE, in_subvs=False)
_register(SERVICE + "/subvs/{sub}", in_subvs=True)
