"""Templates: versioned data files that render to virtual services (and certificates).

Shipped templates are in ``data/``; imported ones are kept in a folder beside the store
(``<store folder>/templates``). ``preview`` is pure: it says what applying would create,
replace or leave unchanged, and what validation would refuse; applying goes through the same
read-modify-validate-store path as every other change (the API's templates resource).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passerelle.engine.manage.templates import catalog
from passerelle.engine.manage.templates.params import resolve
from passerelle.engine.manage.templates.preview import CERTIFICATE_PREFIX, merge, validated
from passerelle.engine.manage.templates.render import render
from passerelle.engine.manage.templates.spec import TemplateSpec
from passerelle.engine.model.config import Config
from passerelle.engine.model.errors import ConfigError

__all__ = [
    "CERTIFICATE_PREFIX",
    "Parameter",
    "Preview",
    "TemplateCollision",
    "TemplateInfo",
    "apply_to",
    "export_template",
    "get_template",
    "import_template",
    "list_templates",
    "preview",
    "render_template",
]


@dataclass(frozen=True)
class Parameter:
    name: str
    title: str
    kind: str  # text|address|port|hostname|hostnames|addresses|certificate|integer|boolean
    default: Any
    required: bool
    help: str
    choices: tuple[str, ...] = ()  # text: the allowed values (a drop-down)


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    version: str
    title: str
    description: str
    parameters: tuple[Parameter, ...]
    builtin: bool = True  # False: imported on this appliance


@dataclass(frozen=True)
class Preview:
    config: Config  # the configuration applying would store (valid parts only if problems)
    added: list[str]  # virtual service names; certificates as "certificate:<name>"
    replaced: list[str]
    unchanged: list[str]
    problems: list[tuple[str, str]]  # (field, message) from validation; empty: can be applied


def _info(spec: TemplateSpec, builtin: bool) -> TemplateInfo:
    return TemplateInfo(
        name=spec.name,
        version=spec.version,
        title=spec.title,
        description=spec.description.strip(),
        parameters=tuple(
            Parameter(
                name=p.name,
                title=p.title,
                kind=p.kind,
                default=p.default,
                required=p.required,
                help=p.help.strip(),
                choices=tuple(p.choices),
            )
            for p in spec.parameters
        ),
        builtin=builtin,
    )


def list_templates(extra_dir: Path | None = None) -> list[TemplateInfo]:
    """Built-in templates, then imported ones (``extra_dir``), each sorted by name.

    An imported file that no longer reads as a template is left out rather than hiding the rest.
    """
    infos = [_info(spec, True) for spec in catalog.builtin_specs().values()]
    for name in catalog.imported_texts(extra_dir):
        try:
            spec, _, builtin = catalog.find(name, extra_dir)
        except (KeyError, ValueError):
            continue
        infos.append(_info(spec, builtin))
    return infos


def get_template(name: str, extra_dir: Path | None = None) -> TemplateInfo:
    """One template by name; KeyError if there is none."""
    spec, _, builtin = catalog.find(name, extra_dir)
    return _info(spec, builtin)


def render_template(
    name: str, params: dict[str, Any], current: Config | None = None, extra_dir: Path | None = None
) -> dict[str, Any]:
    """The template's own output (certificates, virtual_services) as configuration data.

    ConfigError with field ``parameters.<name>`` for a bad value; with ``current``, a
    certificate parameter must name one of its certificates.
    """
    spec, _, _ = catalog.find(name, extra_dir)
    installed = None if current is None else [c.name for c in current.certificates]
    values = resolve(spec, params, installed)
    return render(spec.body.model_dump(), values)


def preview(
    current: Config, name: str, params: dict[str, Any], extra_dir: Path | None = None
) -> Preview:
    """What applying template ``name`` with ``params`` to ``current`` would produce.

    KeyError for an unknown template; ConfigError naming ``parameters.<name>`` for a bad value.
    Same-named services are shown as replaced (or unchanged when identical): applying refuses
    to replace unless asked to.
    """
    merged = merge(current, render_template(name, params, current, extra_dir))
    config, problems = validated(merged)
    return Preview(config, merged.added, merged.replaced, merged.unchanged, problems)


class TemplateCollision(ConfigError):
    """Applying would replace existing services (or certificates) and replace was not asked;
    ``field`` names the first existing one, e.g. ``virtual_services[1].name``."""


def apply_to(
    data: dict[str, Any],
    name: str,
    params: dict[str, Any],
    *,
    replace: bool = False,
    extra_dir: Path | None = None,
) -> Preview:
    """The modify step of applying a template, for a read-modify-validate-store change.

    ``data`` is the current configuration as JSON data (as ``changes.edit`` hands it); it is
    replaced in place by the result. Raises KeyError for an unknown template, ConfigError
    naming ``parameters.<name>`` or the field validation refuses, and TemplateCollision when
    same-named services exist and ``replace`` is false. Nothing in ``data`` changes on error.
    """
    result = preview(Config.model_validate(data), name, params, extra_dir)
    if result.problems:
        field, message = result.problems[0]
        raise ConfigError(field, message, list(result.problems))
    if result.replaced and not replace:
        first = result.replaced[0]
        if first.startswith(CERTIFICATE_PREFIX):
            key, wanted = "certificates", first.removeprefix(CERTIFICATE_PREFIX)
        else:
            key, wanted = "virtual_services", first
        index = [item["name"] for item in data[key]].index(wanted)
        verb = "exists" if len(result.replaced) == 1 else "exist"
        raise TemplateCollision(
            f"{key}[{index}].name",
            f"{', '.join(result.replaced)} already {verb}; choose other names or apply with "
            "replace=true",
        )
    data.clear()
    data.update(result.config.model_dump(mode="json"))
    return result


def import_template(text: str, extra_dir: Path) -> TemplateInfo:
    """Check a template data file (YAML) and keep it in ``extra_dir``; ConfigError if invalid.

    It must render to a valid configuration with sample values; an imported template of the
    same name is replaced, a built-in one cannot be.
    """
    spec = catalog.checked(text)
    catalog.store(text, spec, extra_dir)
    return _info(spec, False)


def export_template(name: str, extra_dir: Path | None = None) -> str:
    """The data file text of a template (what import takes back); KeyError if unknown."""
    _, text, _ = catalog.find(name, extra_dir)
    return text
