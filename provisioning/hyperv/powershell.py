"""PowerShell generated from data: values only ever appear as single-quoted literals in a
header of variable assignments, in front of a script body that never changes.

In a single-quoted PowerShell string nothing is expanded ($, backtick, double quotes are
plain characters) and the only special character is the quote itself, which is doubled.
PowerShell also takes the typographic single quotes (U+2018..U+201B) as quote characters,
so those are doubled as well.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
VARIABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")


def quote(value: str) -> str:
    """`value` as a PowerShell single-quoted string literal."""
    return "'" + "".join(c + c if c in SINGLE_QUOTES else c for c in value) + "'"


def literal(value: Any) -> str:
    """A PowerShell expression for a str, int, bool, None, list or mapping of those."""
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Mapping):
        entries = "; ".join(f"{quote(str(k))} = {literal(v)}" for k, v in value.items())
        return f"[ordered]@{{{entries}}}"
    if isinstance(value, list | tuple):
        return "@(" + ", ".join(literal(v) for v in value) + ")"
    raise TypeError(f"no PowerShell literal for {type(value).__name__}")


PRELUDE = """\
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
"""

# Success: the result as JSON on stdout, exit 0. Failure: one JSON error record on stderr,
# exit 1, so the caller never has to parse PowerShell's CLIXML error stream.
ENVELOPE = """\
try {{
    $result = & {{
{body}
    }}
    [Console]::Out.Write((ConvertTo-Json -InputObject $result -Depth 8 -Compress))
    exit 0
}} catch {{
    $record = [ordered]@{{
        message = $_.Exception.Message
        category = [string]$_.CategoryInfo.Category
        error_id = [string]$_.FullyQualifiedErrorId
    }}
    [Console]::Error.Write((ConvertTo-Json -InputObject $record -Compress))
    exit 1
}}
"""


def render(body: str, params: Mapping[str, Any]) -> str:
    """The full script: prelude, one `$Name = literal` line per parameter, the body."""
    lines = []
    for name, value in params.items():
        if not VARIABLE_NAME.match(name):
            raise ValueError(f"{name!r} is not a plain PowerShell variable name")
        lines.append(f"${name} = {literal(value)}")
    indented = "\n".join("        " + line if line else line for line in body.splitlines())
    return PRELUDE + "\n".join(lines) + "\n" + ENVELOPE.format(body=indented)


def encode(script: str) -> str:
    """The argument of powershell.exe -EncodedCommand: base64 of the UTF-16LE text."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")
