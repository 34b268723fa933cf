"""/api/v1/virtual-services: list, read, create, replace, delete, enable and disable."""

from __future__ import annotations

from typing import Any

from flask import Response

from passerelle.engine.manage.api import locate
from passerelle.engine.manage.api.bodies import empty, json_object, parse, reply
from passerelle.engine.manage.api.changes import Edited, current, edit
from passerelle.engine.manage.api.errors import ApiError, not_found
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.model.config import VirtualService

BASE = "/api/v1/virtual-services"
ONE = BASE + "/{name}"

resource = Resource("virtual_services", "virtual services")


def _read(name: str) -> tuple[int, VirtualService]:
    number, config = current()
    try:
        return number, config.service(name)
    except KeyError:
        raise not_found(f"virtual service named {name!r}") from None


def _stored(name: str, edited: Edited, status: int = 200) -> Response:
    service = edited.config.service(name)
    response = reply(service.model_dump(mode="json"), status, etag=edited.version)
    if status == 201:
        response.headers["Location"] = f"{BASE}/{name}"
    return response


@resource.route("GET", BASE, "List virtual services", response=VirtualService, many=True, etag=True)
def list_services() -> Response:
    number, config = current()
    return reply([vs.model_dump(mode="json") for vs in config.virtual_services], etag=number)


@resource.route(
    "POST",
    BASE,
    "Create a virtual service",
    body=VirtualService,
    response=VirtualService,
    status=201,
    errors=(409, 412, 422),
    etag=True,
)
def create_service() -> Response:
    service = parse(VirtualService, json_object())

    def add(config: dict[str, Any]) -> None:
        if any(vs["name"] == service.name for vs in config["virtual_services"]):
            raise ApiError(409, f"a virtual service named {service.name!r} exists", "name")
        config["virtual_services"].append(service.model_dump(mode="json"))

    edited, _ = edit(f"create virtual service {service.name}", add)
    return _stored(service.name, edited, 201)


@resource.route(
    "GET", ONE, "Read a virtual service", response=VirtualService, errors=(404,), etag=True
)
def get_service(name: str) -> Response:
    number, service = _read(name)
    return reply(service.model_dump(mode="json"), etag=number)


@resource.route(
    "PUT",
    ONE,
    "Replace a virtual service",
    body=VirtualService,
    response=VirtualService,
    errors=(404, 412, 422),
    etag=True,
)
def replace_service(name: str) -> Response:
    service = parse(VirtualService, json_object())
    if service.name != name:
        raise ApiError(422, f"must be {name!r}, the name in the path", "name")

    def replace(config: dict[str, Any]) -> None:
        config["virtual_services"][locate.service_index(config, name)] = service.model_dump(
            mode="json"
        )

    edited, _ = edit(f"replace virtual service {name}", replace)
    return _stored(name, edited)


@resource.route("DELETE", ONE, "Delete a virtual service", status=204, errors=(404, 412), etag=True)
def delete_service(name: str) -> Response:
    def remove(config: dict[str, Any]) -> None:
        del config["virtual_services"][locate.service_index(config, name)]

    edited, _ = edit(f"delete virtual service {name}", remove)
    return empty(etag=edited.version)


def _set_enabled(name: str, enabled: bool) -> Response:
    def switch(config: dict[str, Any]) -> None:
        locate.service(config, name)["enabled"] = enabled

    action = "enable" if enabled else "disable"
    edited, _ = edit(f"{action} virtual service {name}", switch)
    return _stored(name, edited)


@resource.route(
    "POST",
    ONE + "/enable",
    "Enable a virtual service (it listens)",
    response=VirtualService,
    errors=(404, 412, 422),
    etag=True,
)
def enable_service(name: str) -> Response:
    return _set_enabled(name, True)


@resource.route(
    "POST",
    ONE + "/disable",
    "Disable a virtual service (it stops listening)",
    response=VirtualService,
    errors=(404, 412, 422),
    etag=True,
)
def disable_service(name: str) -> Response:
    return _set_enabled(name, False)
