"""Reading configuration files (YAML or JSON) and writing a configuration back out as text.

YAML is read with the YAML 1.2 rules for plain scalars: only ``true``/``false`` are booleans
and only plain decimal numbers are numbers, so ``x_forwarded_for: off`` stays the string 'off'
and an IPv6 address such as ``1:2:3:4:5:6:7:8`` is not read as a base-60 integer (YAML 1.1).
Duplicate keys are errors rather than the last one silently winning.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from passerelle.engine.model.config import Config
from passerelle.engine.model.errors import ConfigError

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"

_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^[-+]?[0-9]+$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$"
)


class ConfigFileError(ConfigError):
    """A file that cannot be read or parsed; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__("", message)
        self.line = line


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                    continue
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"found duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)

    def construct_decimal_int(self, node: yaml.ScalarNode) -> int:
        # YAML 1.1 would read a leading zero as octal: 010 is ten here
        return int(self.construct_scalar(node))


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, _BOOL_RE, list("tTfF"))
# int before float: "10" matches both patterns and the first one added wins
_Loader.add_implicit_resolver(_INT, _INT_RE, list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+.0123456789"))
_Loader.add_constructor(_INT, _Loader.construct_decimal_int)


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line text (PEM) as literal blocks; short lists of values inline."""

    def represent_text(self, value: str) -> yaml.ScalarNode:
        return self.represent_scalar(
            "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
        )

    def represent_values(self, value: list[Any]) -> yaml.SequenceNode:
        inline = all(
            isinstance(v, int | float) or (isinstance(v, str) and "\n" not in v) for v in value
        )
        return self.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=inline or None)


_Dumper.add_representer(str, _Dumper.represent_text)
_Dumper.add_representer(list, _Dumper.represent_values)
# The dumper quotes any string that some reader could take for another type: it already knows
# the YAML 1.1 patterns; add the YAML 1.2 float form (1e3) that 1.1 reads as a string.
_Dumper.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+.0123456789"))


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a configuration file into a dict; ``"-"`` reads standard input.

    The format follows the extension (.yaml, .yml, .json); otherwise text starting with '{' is
    JSON and anything else YAML. Raises ConfigFileError (field "") naming the file and line.
    """
    if str(path) == "-":
        name = "<stdin>"
        try:
            raw = sys.stdin.buffer.read()
        except OSError as exc:
            raise ConfigFileError(f"{name}: cannot read: {exc.strerror or exc}") from None
    else:
        name = str(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigFileError(f"{name}: cannot read: {exc.strerror or exc}") from None
    return parse_config_bytes(name, raw)


def parse_config_bytes(name: str, raw: bytes) -> dict[str, Any]:
    """The configuration in ``raw``, read from ``name`` (``"<stdin>"`` for standard input)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ConfigFileError(f"{name}: the file is empty (an empty configuration is written {{}})")

    suffix = Path(name).suffix.lower() if name != "<stdin>" else ""
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip().startswith("{")):
        data = _parse_json(name, text)
    else:
        data = _parse_yaml(name, text)
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"{name}: the top level must be a mapping (certificates, virtual_services)"
        )
    return data


def _parse_json(name: str, text: str) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ConfigFileError(f"{name}: JSON error: duplicate key {key!r}")
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise ConfigFileError(
            f"{name}: JSON error at line {exc.lineno}, column {exc.colno}: {exc.msg}", exc.lineno
        ) from None


def _parse_yaml(name: str, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise ConfigFileError(f"{name}: YAML error: {problem}") from None
        raise ConfigFileError(
            f"{name}: YAML error at line {mark.line + 1}, column {mark.column + 1}: {problem}",
            mark.line + 1,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{name}: YAML error: {exc}") from None


def dump_config(config: Config, fmt: str = "yaml", *, defaults: bool = False) -> str:
    """Text of ``config`` in ``fmt`` ("yaml" or "json") that re-imports to an equal Config.

    Fields equal to their defaults are left out unless ``defaults``, so the export reads like a
    hand-written file. Each object starts with its name and its own fields, then shared ones.
    """
    data = _ordered(config, config.model_dump(mode="json", exclude_defaults=not defaults))
    if fmt == "yaml":
        return yaml.dump(
            data,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=100,
        )
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    raise ValueError(f"unknown format {fmt!r} (yaml or json)")


def _field_order(cls: type[BaseModel]) -> list[str]:
    own = [name for name in inspect.get_annotations(cls) if name in cls.model_fields]
    return own + [name for name in cls.model_fields if name not in own]


def _ordered(model: BaseModel, data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in _field_order(type(model)):
        if name not in data:
            continue
        value, attr = data[name], getattr(model, name)
        if isinstance(attr, BaseModel):
            value = _ordered(attr, value)
        elif isinstance(attr, list) and attr and isinstance(attr[0], BaseModel):
            value = [_ordered(m, d) for m, d in zip(attr, value, strict=True)]
        result[name] = value
    return result
