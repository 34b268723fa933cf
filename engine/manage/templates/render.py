"""Rendering a template body: structured substitution of parameter values, no code.

- ``"${name}"`` alone is replaced by the value with its type (a number, a list, a boolean);
  inside other text it is replaced by the value as text (text, numbers and addresses only).
  ``$${`` writes a literal ``${``.
- ``{$if: name, then: X, else: Y}``: X when the parameter is true (or a non-empty value), else
  Y; without ``else`` the key (in a mapping) or the item (in a list) is left out.
- ``{$select: name, cases: {value: X, ...}, else: Y}``: the case named by the value.
- ``{$for: name, as: item, do: X}``: X once per element of a list parameter, with ``${item}``
  bound to the element; inside a list its results are spliced in.

Nothing else is interpreted, so an imported template can describe services but never run code.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from passerelle.engine.model.errors import ConfigError

PLACEHOLDER = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DIRECTIVES = {
    "$if": {"then", "else"},
    "$select": {"cases", "else"},
    "$for": {"as", "do"},
}
_OMIT = object()  # a directive that produced nothing


class _Splice(list[Any]):
    """The results of $for: spliced into an enclosing list."""


def _directive(node: dict[str, Any]) -> str | None:
    found = [key for key in node if isinstance(key, str) and key.startswith("$")]
    if not found:
        return None
    if len(found) > 1 or found[0] not in DIRECTIVES:
        raise ValueError(f"unknown directive {found[0]!r}; use one of {', '.join(DIRECTIVES)}")
    extra = set(node) - {found[0]} - DIRECTIVES[found[0]]
    if extra:
        raise ValueError(f"{found[0]} does not take {', '.join(sorted(map(str, extra)))}")
    if not isinstance(node[found[0]], str):
        raise ValueError(f"{found[0]} takes a parameter name")
    return found[0]


def _text(value: str, scope: dict[str, Any]) -> Any:
    whole = PLACEHOLDER.fullmatch(value)
    if whole and whole.group(1):
        return copy.deepcopy(scope[whole.group(1)])

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "${"
        item = scope[match.group(1)]
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ValueError(f"${{{match.group(1)}}} is not text; use it alone as the value")
        return str(item)

    return PLACEHOLDER.sub(replace, value)


def _truthy(value: Any) -> bool:
    return bool(value) and value != "false"


def _node(node: Any, scope: dict[str, Any]) -> Any:
    if isinstance(node, str):
        return _text(node, scope)
    if isinstance(node, list):
        out: list[Any] = []
        for item in node:
            rendered = _node(item, scope)
            if rendered is _OMIT:
                continue
            if isinstance(rendered, _Splice):
                out.extend(rendered)
            else:
                out.append(rendered)
        return out
    if isinstance(node, dict):
        kind = _directive(node)
        if kind == "$if":
            branch = "then" if _truthy(scope[node["$if"]]) else "else"
            return _node(node[branch], scope) if branch in node else _OMIT
        if kind == "$select":
            cases = node.get("cases") or {}
            chosen = str(scope[node["$select"]])
            if chosen in cases:
                return _node(cases[chosen], scope)
            return _node(node["else"], scope) if "else" in node else _OMIT
        if kind == "$for":
            items = scope[node["$for"]] or []
            if not isinstance(items, list):
                raise ValueError(f"$for needs a list parameter, not {node['$for']!r}")
            name = node.get("as", "item")
            results = _Splice()
            for item in items:
                rendered = _node(node.get("do"), {**scope, name: item})
                if rendered is not _OMIT:
                    results.append(rendered)
            return results
        out_map: dict[str, Any] = {}
        for key, value in node.items():
            rendered = _node(value, scope)
            if rendered is not _OMIT:
                out_map[str(key)] = list(rendered) if isinstance(rendered, _Splice) else rendered
        return out_map
    return node


def render(body: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The configuration fragment (certificates, virtual_services) for these parameter values.

    ``values`` must hold every parameter (``check`` has proved that nothing else is named).
    """
    try:
        result = _node(body, dict(values))
    except (ValueError, KeyError) as exc:
        raise ConfigError("body", f"the template cannot be rendered: {exc}") from None
    return result


def check(node: Any, names: set[str], path: str = "body") -> None:
    """Every placeholder and directive names a parameter (or a $for variable in scope)."""
    if isinstance(node, str):
        for match in PLACEHOLDER.finditer(node):
            if match.group(1) is not None and match.group(1) not in names:
                raise ConfigError(path, f"${{{match.group(1)}}} is not a parameter")
        return
    if isinstance(node, list):
        for i, item in enumerate(node):
            check(item, names, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    try:
        kind = _directive(node)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None
    if kind is not None and node[kind] not in names:
        raise ConfigError(f"{path}.{kind}", f"{node[kind]!r} is not a parameter")
    if kind == "$for":
        name = node.get("as", "item")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"{path}.as", "must be a variable name")
        check(node.get("do"), names | {name}, f"{path}.do")
        return
    if kind == "$select":
        cases = node.get("cases")
        if not isinstance(cases, dict):
            raise ConfigError(f"{path}.cases", "must map values to what they produce")
        for key, value in cases.items():
            check(value, names, f"{path}.cases.{key}")
        if "else" in node:
            check(node["else"], names, f"{path}.else")
        return
    for key, value in node.items():
        if key != kind:
            check(value, names, f"{path}.{key}")
