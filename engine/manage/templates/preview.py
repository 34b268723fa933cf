"""What applying a template would do to a configuration: added, replaced, unchanged, problems.

Rendered virtual services and certificates take the place of the same-named ones (keeping
their position) or are appended. The merged configuration is validated whole, exactly as an
apply would be, and its problems are reported rather than raised so that a screen can show
them beside the preview.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from passerelle.engine.model.config import Certificate, Config, VirtualService
from passerelle.engine.model.errors import ConfigError, validate_config

CERTIFICATE_PREFIX = "certificate:"


@dataclass(frozen=True)
class Merge:
    data: dict[str, Any]  # the merged configuration as JSON data
    added: list[str]
    replaced: list[str]
    unchanged: list[str]
    collisions: list[str]  # fields of the current configuration that would be replaced
    rendered: dict[str, Any]  # the template's own output
    current: Config


def _canonical(model: type[VirtualService] | type[Certificate], item: Any) -> Any:
    try:
        return model.model_validate(item).model_dump(mode="json")
    except ValidationError:
        return item  # the whole-configuration validation reports it with its field


def merge(current: Config, rendered: dict[str, Any]) -> Merge:
    data = current.model_dump(mode="json")
    added: list[str] = []
    replaced: list[str] = []
    unchanged: list[str] = []
    collisions: list[str] = []
    kinds = (
        ("certificates", Certificate, CERTIFICATE_PREFIX),
        ("virtual_services", VirtualService, ""),
    )
    for key, model, prefix in kinds:
        existing = data[key]
        for item in rendered.get(key, []):
            item = _canonical(model, item)
            name = item.get("name") if isinstance(item, dict) else None
            where = next((i for i, old in enumerate(existing) if old["name"] == name), None)
            if where is None:
                existing.append(item)
                added.append(f"{prefix}{name}")
            elif existing[where] == item:
                unchanged.append(f"{prefix}{name}")
            else:
                existing[where] = item
                replaced.append(f"{prefix}{name}")
                collisions.append(f"{key}[{where}].name")
    return Merge(data, added, replaced, unchanged, collisions, rendered, current)


def validated(merged: Merge) -> tuple[Config, list[tuple[str, str]]]:
    """The merged configuration and its problems (empty when it can be applied).

    When it is invalid as a whole, the configuration holds the parts that are valid on their
    own, so the rest of the preview still shows.
    """
    try:
        return validate_config(merged.data), []
    except ConfigError as exc:
        problems = list(exc.problems)

    def parts(key: str, model: type[Any]) -> list[Any]:
        valid = []
        for item in merged.data[key]:
            try:
                valid.append(model.model_validate(item))
            except ValidationError:
                continue
        return valid

    # everything else (e.g. HA settings) as it is now: a template renders services only
    partial = merged.current.model_copy(
        update={
            "certificates": parts("certificates", Certificate),
            "virtual_services": parts("virtual_services", VirtualService),
        }
    )
    return partial, problems
