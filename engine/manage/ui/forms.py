"""HTML form fields named by their path in the configuration model, and back.

A field's ``path`` is the model's own dotted name (``health_check.timeout``), so the ``field``
of an API error finds the input to show it next to. Values that do not convert are passed on
as typed: the model's validation then names the field with its own message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.engine.model.config import SCHEDULING_METHODS

Data = dict[str, Any]


@dataclass(frozen=True)
class Field:
    path: str
    label: str
    kind: str = "text"  # text, optional, int, optional-int, float, ints, strs, bool, choice, group
    choices: tuple[str, ...] = ()
    help: str = ""

    @property
    def group(self) -> str | None:
        """The toggled sub-object this field belongs to (``tls`` for ``tls.cipher_set``)."""
        head = self.path.split(".", 1)[0]
        return head if "." in self.path and head in GROUPS else None


GROUPS = ("tls", "reencrypt")

GENERAL = (
    Field("enabled", "Enabled", "bool"),
    Field("address", "Address", help="IPv4 or IPv6 address the service listens on"),
    Field("ports", "Ports", "ints", help="comma-separated"),
    Field("protocol", "Protocol", "choice", ("tcp", "udp")),
    Field("mode", "Mode", "choice", ("http", "l4")),
    Field("idle_timeout", "Idle timeout (s)", "float"),
    Field("connect_timeout", "Connect timeout (s)", "float"),
    Field("max_connections", "Connection limit", "int", help="0: unlimited"),
    Field("default_subvs", "Default SubVS", "optional", help="SubVS for requests no rule matches"),
)

TLS = (
    Field("tls", "Offload TLS", "group"),
    Field("tls.certificates", "Certificates", "strs", help="names, the first is the default"),
    Field(
        "tls.cipher_set",
        "Cipher set",
        "choice",
        ("best-practices", "intermediate", "backward-compatible", "modern"),
    ),
    Field("tls.min_version", "Minimum version", "choice", ("TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3")),
)

POOL = (
    Field("scheduling", "Scheduling", "choice", SCHEDULING_METHODS),
    Field(
        "persistence.mode",
        "Persistence",
        "choice",
        ("none", "source_ip", "active_cookie", "server_cookie", "header"),
    ),
    Field("persistence.timeout", "Persistence timeout (s)", "float"),
    Field("persistence.cookie_name", "Cookie name"),
    Field("persistence.header_name", "Header name", "optional"),
    Field("health_check.type", "Health check", "choice", ("none", "tcp", "http", "https")),
    Field("health_check.port", "Check port", "optional-int", help="empty: the server's port"),
    Field("health_check.method", "Method", "choice", ("GET", "HEAD", "OPTIONS", "POST")),
    Field("health_check.path", "Path"),
    Field("health_check.host", "Host header", "optional"),
    Field("health_check.expected_status", "Expected status", "ints", help="comma-separated"),
    Field("health_check.interval", "Interval (s)", "float"),
    Field("health_check.timeout", "Timeout (s)", "float"),
    Field("reencrypt", "Re-encrypt to real servers", "group"),
    Field("reencrypt.sni", "SNI", help="'host': the request's Host; 'none'; or a fixed name"),
    Field("reencrypt.verify", "Verify server certificates", "bool"),
)

SERVICE_FORM = GENERAL + TLS + POOL
SUBVS_FORM = POOL

NEW_SERVICE = (
    Field("name", "Name"),
    Field("address", "Address"),
    Field("ports", "Ports", "ints", help="comma-separated"),
    Field("mode", "Mode", "choice", ("http", "l4")),
    Field("protocol", "Protocol", "choice", ("tcp", "udp")),
)

REAL_SERVER = (
    Field("address", "Address"),
    Field("port", "Port", "int"),
    Field("weight", "Weight", "int"),
)

RULE = (
    Field("host", "Host names", "strs", help="exact or *.suffix, comma-separated"),
    Field("path_prefix", "Path prefix", "optional"),
    Field("header", "Header", "optional"),
    Field("header_regex", "Header regex", "optional"),
    Field("sni", "SNI names", "strs", help="comma-separated"),
)


def _get(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _set(data: Data, path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        child = data.get(part)
        if not isinstance(child, dict):
            child = data[part] = {}
        data = child
    data[parts[-1]] = value


def _number(text: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text  # the model refuses it and names the field


def _convert(field: Field, text: str) -> Any:
    text = text.strip()
    match field.kind:
        case "optional":
            return text or None
        case "int":
            return _number(text, int)
        case "optional-int":
            return _number(text, int) if text else None
        case "float":
            return _number(text, float)
        case "ints":
            return [_number(t, int) for t in _split(text)]
        case "strs":
            return _split(text)
        case _:
            return text


def _split(text: str) -> list[str]:
    return [part for part in re.split(r"[,\s]+", text) if part]


def show(field: Field, data: Mapping[str, Any]) -> Any:
    """The value an input shows for ``field`` (text for text inputs)."""
    value = _get(data, field.path)
    if field.kind == "group":
        return value is not None
    if field.kind == "bool":
        return bool(value)
    if field.group and _get(data, field.group) is None:
        value = None
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def apply_form(fields: Iterable[Field], form: Mapping[str, str], data: Data) -> Data:
    """``data`` (a model's JSON form) with the values of ``fields`` taken from ``form``.

    Fields of a group whose toggle is off are left out and the group becomes None.
    """
    fields = tuple(fields)
    toggles = {f.path: f.path in form for f in fields if f.kind == "group"}
    for field in fields:
        if field.kind == "group":
            if not toggles[field.path]:
                data[field.path] = None
            elif not isinstance(data.get(field.path), dict):
                data[field.path] = {}
            continue
        if field.group and not toggles.get(field.group, True):
            continue
        if field.kind == "bool":
            _set(data, field.path, field.path in form)
        else:
            _set(data, field.path, _convert(field, form.get(field.path, "")))
    return data


def values_from_form(fields: Iterable[Field], form: Mapping[str, str]) -> dict[str, Any]:
    """What the inputs showed when a change was refused, so nothing typed is lost."""
    shown: dict[str, Any] = {}
    for field in fields:
        if field.kind in ("group", "bool"):
            shown[field.path] = field.path in form
        else:
            shown[field.path] = form.get(field.path, "")
    return shown


def values_from_data(fields: Iterable[Field], data: Mapping[str, Any]) -> dict[str, Any]:
    return {field.path: show(field, data) for field in fields}


def errors_by_field(
    problems: Iterable[tuple[str, str]], fields: Iterable[Field], prefix: str = ""
) -> dict[str, str]:
    """Error messages keyed by the input they belong to; '' holds the ones no input names.

    ``prefix`` is where the form's object sits in the whole configuration
    (``virtual_services[2].``); problems elsewhere in the configuration go to ''.
    """
    paths = [f.path for f in fields]
    found: dict[str, str] = {}
    for where, message in problems:
        relative = where[len(prefix) :] if prefix and where.startswith(prefix) else where
        if prefix and not where.startswith(prefix) and where:
            relative = ""
        target = _closest(relative, paths)
        text = message if target or not where else f"{where}: {message}"
        found.setdefault(target, text)
    return found


def _closest(path: str, paths: list[str]) -> str:
    """The longest form path that ``path`` is, or lies under (``ports[1]`` is under ``ports``)."""
    plain = re.sub(r"\[\d+\]", "", path)
    best = ""
    for candidate in paths:
        if (plain == candidate or plain.startswith(candidate + ".")) and len(candidate) > len(best):
            best = candidate
    return best
