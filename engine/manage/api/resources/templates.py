"""/api/v1/templates: list, read, export, import, preview and apply templates.

Applying is an ordinary configuration change (read, modify, validate whole, store): a template
whose services would replace existing ones is refused with the field named unless the request
says ``replace: true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Response
from pydantic import Field

from passerelle.engine.manage import templates
from passerelle.engine.manage.api.bodies import json_object, parse, reply
from passerelle.engine.manage.api.changes import current, edit, note
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError, not_found
from passerelle.engine.manage.api.schemas import Body, Problem
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.manage.templates.spec import TemplateSpec
from passerelle.engine.model.config import Config, VirtualService
from passerelle.engine.model.errors import ConfigError

BASE = "/api/v1/templates"
ONE = BASE + "/{name}"
YAML = "application/yaml"
FOLDER = "templates"  # beside the store: imported templates

resource = Resource("templates", "templates")


class ParameterOut(Body):
    name: str
    title: str
    kind: str
    default: Any = None
    required: bool
    help: str
    choices: list[str]


class TemplateOut(Body):
    name: str
    version: str
    title: str
    description: str
    builtin: bool
    parameters: list[ParameterOut]


class TemplateImport(Body):
    text: str = Field(description="the template data file (YAML), as export gives it")


class TemplateParams(Body):
    params: dict[str, Any] = Field(default_factory=dict)


class TemplateApply(TemplateParams):
    replace: bool = Field(default=False, description="replace same-named virtual services")


class PreviewOut(Body):
    template: str
    version: str
    added: list[str] = Field(description="virtual services; certificates as certificate:<name>")
    replaced: list[str]
    unchanged: list[str]
    problems: list[Problem] = Field(description="what validation refuses; empty: can apply")
    virtual_services: list[VirtualService] = Field(description="what the template produces")
    certificates: list[str] = Field(description="names of the certificates it produces")


class ApplyOut(Body):
    version: int
    changed: bool
    added: list[str]
    replaced: list[str]
    unchanged: list[str]


def folder() -> Path:
    return context().store.path.parent / FOLDER


def describe(info: templates.TemplateInfo) -> dict[str, Any]:
    return TemplateOut(
        name=info.name,
        version=info.version,
        title=info.title,
        description=info.description,
        builtin=info.builtin,
        parameters=[
            ParameterOut(
                name=p.name,
                title=p.title,
                kind=p.kind,
                default=p.default,
                required=p.required,
                help=p.help,
                choices=list(p.choices),
            )
            for p in info.parameters
        ],
    ).model_dump(mode="json")


def _info(name: str) -> templates.TemplateInfo:
    try:
        return templates.get_template(name, folder())
    except KeyError:
        raise not_found(f"template named {name!r}") from None


def _preview(config: Config, name: str, params: dict[str, Any]) -> templates.Preview:
    try:
        return templates.preview(config, name, params, folder())
    except KeyError:
        raise not_found(f"template named {name!r}") from None
    except ConfigError as exc:
        raise ApiError.from_config_error(exc) from None


@resource.route("GET", BASE, "List templates", response=TemplateOut, many=True)
def list_templates() -> Response:
    return reply([describe(info) for info in templates.list_templates(folder())])


@resource.route("GET", ONE, "Read a template", response=TemplateOut, errors=(404,))
def get_template(name: str) -> Response:
    return reply(describe(_info(name)))


@resource.route(
    "GET",
    ONE + "/export",
    "Export a template's data file (YAML)",
    response=TemplateSpec,
    response_mode="validation",
    errors=(404,),
    media=YAML,
)
def export_template(name: str) -> Response:
    try:
        text = templates.export_template(name, folder())
    except KeyError:
        raise not_found(f"template named {name!r}") from None
    response = Response(text, mimetype=YAML)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.yaml"'
    return response


@resource.route(
    "POST",
    BASE,
    "Import a template (its YAML data file); replaces an imported one of the same name",
    body=TemplateImport,
    response=TemplateOut,
    status=201,
    errors=(422,),
)
def import_template() -> Response:
    body = parse(TemplateImport, json_object())
    try:
        info = templates.import_template(body.text, folder())
    except ConfigError as exc:
        raise ApiError.from_config_error(exc) from None
    note(f"import template {info.name} {info.version}")
    response = reply(describe(info), 201)
    response.headers["Location"] = f"{BASE}/{info.name}"
    return response


@resource.route(
    "POST",
    ONE + "/preview",
    "What applying a template would create, replace or leave unchanged (changes nothing)",
    body=TemplateParams,
    response=PreviewOut,
    errors=(404, 422),
)
def preview_template(name: str) -> Response:
    body = parse(TemplateParams, json_object())
    info = _info(name)
    _, config = current()
    result = _preview(config, name, body.params)
    rendered = templates.render_template(name, body.params, config, folder())
    produced = {vs.get("name") for vs in rendered.get("virtual_services", [])}
    payload = PreviewOut(
        template=info.name,
        version=info.version,
        added=result.added,
        replaced=result.replaced,
        unchanged=result.unchanged,
        problems=[Problem(field=f, error=m) for f, m in result.problems],
        virtual_services=[vs for vs in result.config.virtual_services if vs.name in produced],
        certificates=[c.get("name", "") for c in rendered.get("certificates", [])],
    )
    return reply(payload.model_dump(mode="json"))


@resource.route(
    "POST",
    ONE + "/apply",
    "Apply a template: its services are added (or replace same-named ones with replace=true)",
    body=TemplateApply,
    response=ApplyOut,
    errors=(404, 409, 412, 422),
    etag=True,
)
def apply_template(name: str) -> Response:
    body = parse(TemplateApply, json_object())
    info = _info(name)

    def merge(data: dict[str, Any]) -> templates.Preview:
        try:
            return templates.apply_to(
                data, name, body.params, replace=body.replace, extra_dir=folder()
            )
        except KeyError:
            raise not_found(f"template named {name!r}") from None
        except templates.TemplateCollision as exc:
            raise ApiError(409, exc.message, exc.field) from None
        except ConfigError as exc:
            raise ApiError.from_config_error(exc) from None

    edited, result = edit(f"apply template {info.name} {info.version}", merge)
    payload = ApplyOut(
        version=edited.version,
        changed=edited.changed,
        added=result.added,
        replaced=result.replaced,
        unchanged=result.unchanged,
    )
    return reply(payload.model_dump(mode="json"), etag=edited.version)
