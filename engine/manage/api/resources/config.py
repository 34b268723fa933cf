"""/api/v1/config: export, import whole, history, one version, diff and rollback."""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

from flask import Response, request

from passerelle.engine.manage.api.bodies import int_query, iso, json_object, reply
from passerelle.engine.manage.api.changes import current, edit
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError, not_found
from passerelle.engine.manage.api.schemas import (
    ChangeResult,
    ConfigDiff,
    VersionDetail,
    VersionInfo,
)
from passerelle.engine.manage.api.spec import Query, Resource
from passerelle.engine.manage.files import dump_config
from passerelle.engine.manage.store import Version
from passerelle.engine.model.config import Config

BASE = "/api/v1/config"
YAML = "application/yaml"

resource = Resource("config", "configuration")

FORMAT = Query("format", "json (default) or yaml", enum=("json", "yaml"))
DEFAULTS = Query("defaults", "true: spell out every default", enum=("true", "false"))


def version_info(version: Version) -> dict[str, Any]:
    return VersionInfo(
        number=version.number,
        created=iso(version.created),
        author=version.author,
        comment=version.comment,
        digest=version.digest,
    ).model_dump(mode="json")


def _replace_keeping_ha(config: dict[str, Any], incoming: dict[str, Any]) -> None:
    """Replace the whole configuration, except this appliance's own HA settings (see
    engine/model/ha.keep_local_ha): only pairing and /api/v1/ha change those."""
    ha = config.get("ha")
    config.clear()
    config.update({k: v for k, v in incoming.items() if k != "ha"})
    if ha is not None:
        config["ha"] = ha


def _version(number: int) -> tuple[Version, Config]:
    try:
        return context().store.get(number)
    except KeyError:
        raise not_found(f"configuration version {number} (it may have been pruned)") from None


def _export(config: Config, number: int) -> Response:
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "yaml"):
        raise ApiError(400, "must be json or yaml", "format")
    defaults_text = request.args.get("defaults", "false")
    if defaults_text not in ("true", "false"):
        raise ApiError(400, "must be true or false", "defaults")
    defaults = defaults_text == "true"
    response = Response(
        dump_config(config, fmt, defaults=defaults),
        mimetype=YAML if fmt == "yaml" else "application/json",
    )
    response.headers["ETag"] = f'"{number}"'
    return response


@resource.route(
    "GET",
    BASE,
    "Export the whole configuration (with private keys: it is a backup)",
    response=Config,
    response_mode="validation",
    alternatives=(YAML,),
    query=(FORMAT, DEFAULTS),
    etag=True,
)
def export_config() -> Response:
    number, config = current()
    return _export(config, number)


@resource.route(
    "PUT",
    BASE,
    "Import a whole configuration (replaces everything)",
    body=Config,
    response=ChangeResult,
    errors=(412, 422),
    etag=True,
)
def import_config() -> Response:
    data = json_object()

    def replace(config: dict[str, Any]) -> None:
        _replace_keeping_ha(config, data)

    edited, _ = edit("import configuration", replace)
    return reply({"version": edited.version, "changed": edited.changed}, etag=edited.version)


@resource.route(
    "GET",
    BASE + "/history",
    "Stored configuration versions, newest first",
    response=VersionInfo,
    many=True,
    query=(Query("limit", "at most this many", "integer", minimum=1),),
)
def history() -> Response:
    limit = int_query("limit", 50, minimum=1, maximum=1000)
    return reply([version_info(v) for v in context().store.history(limit)])


@resource.route(
    "GET",
    BASE + "/versions/{number}",
    "One stored version",
    response=VersionDetail,
    errors=(404,),
)
def get_version(number: str) -> Response:
    version, config = _version(_number(number))
    detail = {"version": version_info(version), "config": config.model_dump(mode="json")}
    return reply(VersionDetail.model_validate(detail).model_dump(mode="json"))


def _number(text: str, field: str = "number") -> int:
    if not text.isdigit() or len(text) > 18:
        raise not_found(f"configuration version {text!r}", field)
    return int(text)


def _redacted(config: Config) -> str:
    # A diff is for reading on screen: show that a key changed, never the key.
    data = config.model_copy(
        update={
            "certificates": [
                cert.model_copy(
                    update={
                        "key_pem": "redacted sha256:"
                        + hashlib.sha256(cert.key_pem.encode()).hexdigest()[:16]
                    }
                )
                if cert.key_pem
                else cert
                for cert in config.certificates
            ]
        }
    )
    return dump_config(data, "yaml")


@resource.route(
    "GET",
    BASE + "/diff",
    "What changed between two versions (unified diff of the YAML)",
    response=ConfigDiff,
    errors=(400, 404),
    query=(
        Query("from", "the older version number", "integer", minimum=0),
        Query("to", "the newer version number (default: the current one)", "integer", minimum=0),
    ),
)
def diff() -> Response:
    latest, _ = current()
    old = int_query("from", latest - 1 if latest > 1 else latest, maximum=2**62)
    new = int_query("to", latest, maximum=2**62)
    texts = []
    for number in (old, new):
        texts.append(_redacted(_version(number)[1]) if number else _redacted(Config()))
    lines = difflib.unified_diff(
        texts[0].splitlines(keepends=True),
        texts[1].splitlines(keepends=True),
        fromfile=f"version {old}",
        tofile=f"version {new}",
    )
    return reply({"from_version": old, "to_version": new, "diff": "".join(lines)})


@resource.route(
    "POST",
    BASE + "/rollback/{number}",
    "Make an earlier version current again (as a new one)",
    response=ChangeResult,
    errors=(404, 412, 422),
    etag=True,
)
def rollback(number: str) -> Response:
    _, config = _version(_number(number))
    target = config.model_dump(mode="json")

    def restore(data: dict[str, Any]) -> None:
        _replace_keeping_ha(data, target)

    edited, _ = edit(f"rollback to version {number}", restore)
    return reply({"version": edited.version, "changed": edited.changed}, etag=edited.version)
