"""The build's inputs: the ``variable`` blocks of packer/*.pkr.hcl, read with python-hcl2.

The HCL files are the one place where the inputs and their defaults are declared; this module
checks every value the wrapper is about to use or hand to Packer, so that a bad value fails
before minutes of work, with a message that names the variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

PACKER_DIR = Path(__file__).resolve().parent.parent / "packer"

_NO_DEFAULT = object()
_HCL_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
_VAR_REF = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")


class VariableError(ValueError):
    """A variable value that cannot be used; ``variable`` names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"variable {variable!r}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class Variable:
    name: str
    type: str  # HCL type expression: string, number, bool, list(string)
    default: Any = _NO_DEFAULT
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT


def load_template(path: Path) -> dict[str, Any]:
    with path.open() as file:
        return hcl2.load(file, serialization_options=_HCL_OPTIONS)


def _hcl_type(raw: object) -> str:
    # python-hcl2 writes type expressions as interpolations: "${list(string)}".
    text = str(raw or "string")
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return text.replace(" ", "")


def load_variables(packer_dir: Path = PACKER_DIR) -> dict[str, Variable]:
    """Every ``variable`` block of every *.pkr.hcl file in ``packer_dir``."""
    variables: dict[str, Variable] = {}
    for path in sorted(packer_dir.glob("*.pkr.hcl")):
        for block in load_template(path).get("variable", []):
            for name, body in block.items():
                if name in variables:
                    raise VariableError(name, f"declared twice (again in {path.name})")
                variables[name] = Variable(
                    name=name,
                    type=_hcl_type(body.get("type")),
                    default=body.get("default", _NO_DEFAULT),
                    description=str(body.get("description", "")),
                )
    return variables


def packer_variable_names(packer_dir: Path = PACKER_DIR) -> set[str]:
    """Variables that the source and build blocks use: the only ones Packer is given."""
    used: set[str] = set()
    for path in sorted(packer_dir.glob("*.pkr.hcl")):
        template = load_template(path)
        for key in ("source", "build"):
            used.update(_references(template.get(key, [])))
    return used


def _references(node: object) -> Iterable[str]:
    if isinstance(node, str):
        yield from _VAR_REF.findall(node)
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _check_type(variable: Variable, value: Any) -> Any:
    kind = variable.type
    if kind == "string":
        if not isinstance(value, str):
            raise VariableError(variable.name, f"expected a string, got {value!r}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise VariableError(variable.name, f"expected a number, got {value!r}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise VariableError(variable.name, f"expected true or false, got {value!r}")
    elif kind == "list(string)":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise VariableError(variable.name, f"expected a list of strings, got {value!r}")
        value = list(value)
    else:
        raise VariableError(variable.name, f"unsupported type {kind!r} in the template")
    return value


def _between(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value != int(value) or not low <= value <= high:
            return f"must be a whole number from {low} to {high}, got {value!r}"
        return None

    return check


def _matches(pattern: str, what: str) -> Callable[[Any], str | None]:
    compiled = re.compile(pattern)

    def check(value: Any) -> str | None:
        return None if compiled.fullmatch(value) else f"must be {what}, got {value!r}"

    return check


def _not_empty(value: Any) -> str | None:
    return None if value.strip() else "must not be empty"


_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.\-]+")
# The disk layout, boot loaders and the appliance software depend on these.
REQUIRED_PACKAGES = ("linux-image-cloud-amd64", "systemd", "python3", "python3-venv", "udev")


def _packages(value: list[str]) -> str | None:
    for name in value:
        if not _DEBIAN_PACKAGE.fullmatch(name):
            return f"{name!r} is not a Debian package name"
    missing = [name for name in REQUIRED_PACKAGES if name not in value]
    if missing:
        return f"must include {', '.join(missing)}"
    if len(set(value)) != len(value):
        return "lists a package twice"
    return None


def _mirrors(value: list[str]) -> str | None:
    if not value:
        return "needs at least one APT source"
    for line in value:
        if not re.fullmatch(r"deb (\[[^\]]*\] )?(https?|file)://\S+ \S+( \S+)+", line):
            return f"{line!r} is not an APT sources line ('deb URI SUITE COMPONENT...')"
    return None


def _requirements(value: list[str]) -> str | None:
    for requirement in value:
        if not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9._\-]*(\[[A-Za-z0-9,._\-]+\])?([<>=!~]=?[^\s;]+)*", requirement
        ):
            return f"{requirement!r} is not a requirement like 'name' or 'name>=1.0'"
    return None


def _cmdline(value: str) -> str | None:
    if any(c in value for c in "\n\r\0"):
        return "must be one line"
    if re.search(r"(^|\s)root=", value):
        return "must not set root= (the build points it at the root partition)"
    return None


RULES: dict[str, Callable[[Any], str | None]] = {
    "version": _matches(r"[0-9]+\.[0-9]+\.[0-9]+([.+~-][A-Za-z0-9.]+)?", "a version like 1.2.3"),
    "source_disk": _not_empty,
    "output_directory": _not_empty,
    "source_disk_checksum": _matches(
        r"none|(md5|sha1|sha256|sha512):[0-9a-f]+", "none or algo:hex"
    ),
    "disk_size_mib": _between(2048, 65536),
    "esp_size_mib": _between(64, 1024),
    "cpus": _between(1, 64),
    "memory_mib": _between(512, 1048576),
    "suite": _matches(r"[a-z]+(-[a-z]+)?", "a Debian suite name"),
    "mirrors": _mirrors,
    "packages": _packages,
    "kernel_cmdline": _cmdline,
    "extra_python_requirements": _requirements,
    "seal_timeout": _matches(r"[0-9]+[smh]", "a duration like 15m"),
}


def resolve(variables: Mapping[str, Variable], values: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``values``, each checked for type and meaning."""
    resolved: dict[str, Any] = {}
    for name in values:
        if name not in variables:
            raise VariableError(name, "is not declared in packer/*.pkr.hcl")
    for name, variable in variables.items():
        if name in values:
            value = values[name]
        elif variable.required:
            raise VariableError(name, "is required and has no default")
        else:
            value = variable.default
        value = _check_type(variable, value)
        rule = RULES.get(name)
        problem = rule(value) if rule else None
        if problem:
            raise VariableError(name, problem)
        resolved[name] = value
    if resolved.get("esp_size_mib", 0) * 4 > resolved.get("disk_size_mib", 0):
        raise VariableError("esp_size_mib", "must be at most a quarter of disk_size_mib")
    return resolved


def packer_arguments(resolved: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """``-var name=value`` pairs for the variables the template uses."""
    arguments: list[str] = []
    for name in sorted(names):
        value = resolved[name]
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        arguments += ["-var", f"{name}={text}"]
    return arguments
