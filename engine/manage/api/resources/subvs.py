"""/api/v1/virtual-services/{name}/subvs: content-switching SubVSs of a virtual service."""

from __future__ import annotations

from typing import Any

from flask import Response

from passerelle.engine.manage.api import locate
from passerelle.engine.manage.api.bodies import empty, json_object, parse, reply
from passerelle.engine.manage.api.changes import Edited, current, edit
from passerelle.engine.manage.api.errors import ApiError, not_found
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.model.config import SubVS, VirtualService

MANY = "/api/v1/virtual-services/{name}/subvs"
ONE = MANY + "/{sub}"

resource = Resource("subvs", "SubVSs")


def _service(name: str) -> tuple[int, VirtualService]:
    number, config = current()
    try:
        return number, config.service(name)
    except KeyError:
        raise not_found(f"virtual service named {name!r}") from None


def _stored(edited: Edited, name: str, sub: str, status: int = 200) -> Response:
    pool = next(p for p in edited.config.service(name).subvs if p.name == sub)
    response = reply(pool.model_dump(mode="json"), status, etag=edited.version)
    if status == 201:
        response.headers["Location"] = f"{MANY.format(name=name)}/{sub}"
    return response


@resource.route(
    "GET",
    MANY,
    "List the SubVSs of a virtual service",
    response=SubVS,
    many=True,
    errors=(404,),
    etag=True,
)
def list_subvs(name: str) -> Response:
    number, vs = _service(name)
    return reply([s.model_dump(mode="json") for s in vs.subvs], etag=number)


@resource.route(
    "POST",
    MANY,
    "Add a SubVS (last in precedence)",
    body=SubVS,
    response=SubVS,
    status=201,
    errors=(404, 409, 412, 422),
    etag=True,
)
def create_subvs(name: str) -> Response:
    new = parse(SubVS, json_object())

    def add(config: dict[str, Any]) -> None:
        vs = locate.service(config, name)
        if any(s["name"] == new.name for s in vs["subvs"]):
            raise ApiError(409, f"a SubVS named {new.name!r} exists in {name!r}", "name")
        vs["subvs"].append(new.model_dump(mode="json"))

    edited, _ = edit(f"add SubVS {new.name} to virtual service {name}", add)
    return _stored(edited, name, new.name, 201)


@resource.route("GET", ONE, "Read a SubVS", response=SubVS, errors=(404,), etag=True)
def get_subvs(name: str, sub: str) -> Response:
    number, vs = _service(name)
    for pool in vs.subvs:
        if pool.name == sub:
            return reply(pool.model_dump(mode="json"), etag=number)
    raise not_found(f"SubVS named {sub!r} in virtual service {name!r}")


@resource.route(
    "PUT", ONE, "Replace a SubVS", body=SubVS, response=SubVS, errors=(404, 412, 422), etag=True
)
def replace_subvs(name: str, sub: str) -> Response:
    new = parse(SubVS, json_object())
    if new.name != sub:
        raise ApiError(422, f"must be {sub!r}, the name in the path", "name")

    def replace(config: dict[str, Any]) -> None:
        vs = locate.service(config, name)
        vs["subvs"][locate.subvs_index(vs, sub)] = new.model_dump(mode="json")

    edited, _ = edit(f"replace SubVS {sub} of virtual service {name}", replace)
    return _stored(edited, name, sub)


@resource.route("DELETE", ONE, "Delete a SubVS", status=204, errors=(404, 412, 422), etag=True)
def delete_subvs(name: str, sub: str) -> Response:
    def remove(config: dict[str, Any]) -> None:
        vs = locate.service(config, name)
        del vs["subvs"][locate.subvs_index(vs, sub)]

    edited, _ = edit(f"delete SubVS {sub} of virtual service {name}", remove)
    return empty(etag=edited.version)
