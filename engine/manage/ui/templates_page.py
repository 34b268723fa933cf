"""Templates: pick one, fill in its parameters, preview what changes, apply."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Response, abort, request

from passerelle.engine.manage.api.changes import current
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.ui.pages import done, render
from passerelle.engine.manage.ui.web import page
from passerelle.engine.manage.ui.writes import change
from passerelle.engine.model.config import Config
from passerelle.engine.model.errors import ConfigError

IMPORTED_FOLDER = "templates"


def _module() -> Any | None:
    # Templates ship as their own part; without it the page says so instead of failing.
    try:
        return importlib.import_module("passerelle.engine.manage.templates")
    except ImportError:
        return None


def _extra() -> Any:
    return context().directory / IMPORTED_FOLDER


def _template(module: Any, name: str) -> Any:
    try:
        return module.get_template(name, extra_dir=_extra())
    except (KeyError, ValueError):
        abort(404)


def _params(info: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for parameter in info.parameters:
        if parameter.kind == "boolean":
            params[parameter.name] = "true" if request.form.get(parameter.name) else "false"
            continue
        value = request.form.get(parameter.name, "").strip()
        if value:
            params[parameter.name] = value
    return params


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


@page("/templates")
def templates() -> Response:
    module = _module()
    infos = module.list_templates(extra_dir=_extra()) if module else []
    return render("templates.html", available=module is not None, infos=infos)


def _form(
    name: str, status: int = 200, errors: dict[str, str] | None = None, **extra: Any
) -> Response:
    module = _module()
    if module is None:
        abort(404)
    info = _template(module, name)
    typed = request.form if request.method == "POST" else {}
    values = {
        p.name: typed.get(p.name, _shown(p.default)) if typed else _shown(p.default)
        for p in info.parameters
    }
    if typed:
        values.update(
            {p.name: bool(typed.get(p.name)) for p in info.parameters if p.kind == "boolean"}
        )
    else:
        values.update({p.name: p.default is True for p in info.parameters if p.kind == "boolean"})
    _, config = current()
    return render(
        "template.html",
        status,
        info=info,
        values=values,
        errors=errors or {},
        certificates=[c.name for c in config.certificates],
        **extra,
    )


@page("/templates/<name>")
def template(name: str) -> Response:
    return _form(name)


def _problem_errors(problems: list[tuple[str, str]]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for field, message in problems:
        key = field.removeprefix("parameters.") if field.startswith("parameters.") else ""
        errors.setdefault(key, message if key else f"{field}: {message}" if field else message)
    return errors


@page("/templates/<name>/preview", methods=("POST",))
def preview(name: str) -> Response:
    module = _module()
    if module is None:
        abort(404)
    info = _template(module, name)
    _, config = current()
    try:
        result = module.preview(config, name, _params(info), extra_dir=_extra())
    except ConfigError as exc:
        return _form(name, 422, _problem_errors(exc.problems))
    return _form(
        name, 422 if result.problems else 200, _problem_errors(result.problems), result=result
    )


@page("/templates/<name>/apply", methods=("POST",))
def apply(name: str) -> Response:
    module = _module()
    if module is None:
        abort(404)
    info = _template(module, name)
    params = _params(info)
    replace = bool(request.form.get("replace"))

    def merge(data: dict[str, Any]) -> None:
        result = module.preview(Config.model_validate(data), name, params, extra_dir=_extra())
        if result.problems:
            field, message = result.problems[0]
            raise ApiError(422, message, field)
        if result.replaced and not replace:
            raise ApiError(
                409,
                f"would replace {', '.join(result.replaced)}; tick 'replace' to allow it",
                "replace",
            )
        data.clear()
        data.update(result.config.model_dump(mode="json"))

    try:
        outcome = change(f"apply template {name} {info.version}", merge)
    except ConfigError as exc:
        return _form(name, 422, _problem_errors(exc.problems))
    if not outcome.ok:
        return _form(name, outcome.status, _problem_errors(outcome.problems))
    return done("ui.services", f"template {info.title} applied")
