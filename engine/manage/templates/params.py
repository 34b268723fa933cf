"""Checking the values given for a template's parameters, each by its kind.

Values may come from JSON (typed) or from a web form (text), so numbers and booleans are also
accepted as text and lists as text separated by commas, spaces or line breaks. Every refusal is
a ConfigError whose field is ``parameters.<name>``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection
from typing import Any

from passerelle.engine.manage.templates.spec import ParameterSpec, TemplateSpec
from passerelle.engine.model.errors import ConfigError

HOSTNAME = re.compile(
    r"^(\*\.)?(?=.{1,253}$)[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?)*$"
)
CERTIFICATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
MAX_TEXT = 1024
MAX_ITEMS = 256


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part for part in re.split(r"[\s,]+", value) if part]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError("must be a list")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    if len(value) > MAX_TEXT or any(ord(c) < 32 for c in value):
        raise ValueError(f"must be one line of at most {MAX_TEXT} characters")
    return value


def _address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


def _hostname(value: Any) -> str:
    text = str(value).strip().lower().rstrip(".")
    if not HOSTNAME.fullmatch(text):
        raise ValueError(f"{value!r} is not a host name")
    return text


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,12}\s*", value):
        return int(value)
    raise ValueError("must be a whole number")


def _port(value: Any) -> int:
    port = _integer(value)
    if not 1 <= port <= 65535:
        raise ValueError("must be a port number from 1 to 65535")
    return port


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
        return value.lower() in ("true", "yes", "on")
    raise ValueError("must be true or false")


def _unique(kind: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    def check(value: Any) -> list[Any]:
        items = [kind(item) for item in _items(value)]
        if len(items) > MAX_ITEMS:
            raise ValueError(f"at most {MAX_ITEMS} entries")
        if len(set(items)) != len(items):
            raise ValueError("an entry is listed twice")
        return items

    return check


def _certificate(value: Any) -> str:
    text = _text(value)
    if not CERTIFICATE_NAME.fullmatch(text):
        raise ValueError("must be the name of an installed certificate")
    return text


CHECKS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "address": _address,
    "addresses": _unique(_address),
    "hostname": _hostname,
    "hostnames": _unique(_hostname),
    "port": _port,
    "integer": _integer,
    "boolean": _boolean,
    "certificate": _certificate,
}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def check_value(spec: ParameterSpec, value: Any) -> Any:
    """The value in its canonical form; ValueError saying what is wrong."""
    result = CHECKS[spec.kind](value)
    if spec.choices and result not in spec.choices:
        raise ValueError(f"must be one of {', '.join(spec.choices)}")
    if spec.pattern is not None and not re.fullmatch(spec.pattern, result):
        raise ValueError(f"must match {spec.pattern}")
    if spec.minimum is not None and result < spec.minimum:
        raise ValueError(f"must be at least {spec.minimum}")
    if spec.maximum is not None and result > spec.maximum:
        raise ValueError(f"must be at most {spec.maximum}")
    return result


def resolve(
    template: TemplateSpec, given: dict[str, Any], certificates: Collection[str] | None = None
) -> dict[str, Any]:
    """Every parameter's value: the given one checked, else the default.

    ``certificates`` names the installed certificates that a certificate parameter may name
    (None: not checked). An optional parameter without a value renders as empty (null, or an
    empty list for list kinds), which ``$if`` reads as false.
    """
    if not isinstance(given, dict):
        raise ConfigError("parameters", "must map parameter names to values")
    for name in given:
        if template.parameter(name) is None:
            raise ConfigError(f"parameters.{name}", f"{template.name} has no such parameter")
    values: dict[str, Any] = {}
    for spec in template.parameters:
        field = f"parameters.{spec.name}"
        value = given.get(spec.name)
        if _empty(value):
            value = spec.default
        if _empty(value):
            if spec.required:
                raise ConfigError(field, f"{spec.title} is required")
            values[spec.name] = [] if spec.kind in ("addresses", "hostnames") else None
            continue
        try:
            values[spec.name] = check_value(spec, value)
        except ValueError as exc:
            raise ConfigError(field, str(exc)) from None
        if (
            spec.kind == "certificate"
            and certificates is not None
            and values[spec.name] not in certificates
        ):
            raise ConfigError(field, f"no certificate named {values[spec.name]!r} is installed")
    return values


SAMPLES: dict[str, Any] = {
    "text": "sample",
    "address": "192.0.2.10",
    "addresses": ["192.0.2.11", "192.0.2.12"],
    "hostname": "host.example.com",
    "hostnames": ["one.example.com", "two.example.com"],
    "port": 8443,
    "integer": 10,
    "boolean": True,
    "certificate": "sample-certificate",
}


def sample_values(template: TemplateSpec) -> dict[str, Any]:
    """Values for a trial rendering when a template is imported: defaults, else a sample."""
    given: dict[str, Any] = {}
    for spec in template.parameters:
        if spec.default is not None:
            continue
        if spec.choices:
            given[spec.name] = spec.choices[0]
        elif spec.kind == "integer" and spec.minimum is not None:
            given[spec.name] = spec.minimum
        elif spec.kind == "text" and spec.pattern is not None:
            given[spec.name] = "sample"  # a pattern that refuses it fails the import, as it should
        else:
            given[spec.name] = SAMPLES[spec.kind]
    return resolve(template, given)
