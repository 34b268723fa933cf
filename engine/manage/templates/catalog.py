"""Where templates come from: the data files shipped in the package and imported ones.

Imported templates live as their own data files (``<name>.yaml``) in a folder beside the
configuration store, so an export gives back exactly the text that was imported.
"""

from __future__ import annotations

import functools
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from passerelle.engine.manage.templates.params import check_value, sample_values
from passerelle.engine.manage.templates.render import check, render
from passerelle.engine.manage.templates.spec import TemplateSpec, parse_template
from passerelle.engine.model.config import Certificate, Config
from passerelle.engine.model.errors import ConfigError, from_validation_error

SUFFIX = ".yaml"


def _builtin_folder() -> Any:
    return resources.files("passerelle.engine.manage.templates").joinpath("data")


@functools.cache
def builtin_texts() -> dict[str, str]:
    """Name -> data file text of every template shipped with the package."""
    texts: dict[str, str] = {}
    for entry in sorted(_builtin_folder().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(SUFFIX):
            text = entry.read_text(encoding="utf-8")
            texts[parse_template(text).name] = text
    return texts


@functools.cache
def builtin_specs() -> dict[str, TemplateSpec]:
    return {name: checked(text) for name, text in builtin_texts().items()}


def imported_texts(extra_dir: Path | None) -> dict[str, str]:
    if extra_dir is None or not extra_dir.is_dir():
        return {}
    texts: dict[str, str] = {}
    for path in sorted(extra_dir.glob(f"*{SUFFIX}")):
        name = path.name.removesuffix(SUFFIX)
        if name not in builtin_texts():
            texts[name] = path.read_text(encoding="utf-8")
    return texts


def find(name: str, extra_dir: Path | None) -> tuple[TemplateSpec, str, bool]:
    """The template, its data file text and whether it is built in; KeyError if unknown."""
    if name in builtin_texts():
        return builtin_specs()[name], builtin_texts()[name], True
    text = imported_texts(extra_dir).get(name)
    if text is None:
        raise KeyError(name)
    return parse_template(text), text, False


def checked(text: str) -> TemplateSpec:
    """Parse a template and prove it renders to valid services with sample values."""
    try:
        return _checked(text)
    except RecursionError:
        raise ConfigError("body", "the template is nested too deeply") from None


def _checked(text: str) -> TemplateSpec:
    spec = parse_template(text)
    for i, parameter in enumerate(spec.parameters):
        if parameter.default is not None:
            try:
                check_value(parameter, parameter.default)
            except ValueError as exc:
                raise ConfigError(f"parameters[{i}].default", str(exc)) from None
    check(spec.body.model_dump(), {p.name for p in spec.parameters})
    fragment = render(spec.body.model_dump(), sample_values(spec))
    # Certificates named by parameters exist only once installed: stand-ins let the rest of the
    # configuration's cross-checks run.
    named = {c.get("name") for c in fragment.get("certificates", []) if isinstance(c, dict)}
    stand_ins = [
        Certificate(name=ref, cert_pem="stand-in").model_dump()
        for vs in fragment.get("virtual_services", [])
        if isinstance(vs, dict)
        for ref in (vs.get("tls") or {}).get("certificates", [])
        if isinstance(ref, str) and ref not in named
    ]
    data = {
        "certificates": [*fragment.get("certificates", []), *_unique_by_name(stand_ins)],
        "virtual_services": fragment.get("virtual_services", []),
    }
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        error = from_validation_error(exc)
        raise ConfigError(
            f"body.{error.field}",
            f"with sample values the template gives an invalid configuration: {error.message}",
        ) from None
    return spec


def _unique_by_name(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({item["name"]: item for item in items}.values())


def store(text: str, spec: TemplateSpec, extra_dir: Path) -> None:
    if spec.name in builtin_texts():
        raise ConfigError("name", f"{spec.name!r} is a built-in template; choose another name")
    extra_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    # Written whole or not at all: a reader never sees half a template.
    fd, temporary = tempfile.mkstemp(dir=extra_dir, prefix=".import-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, extra_dir / f"{spec.name}{SUFFIX}")
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
