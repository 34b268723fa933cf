"""Settings as a JSON object in a file: /run/passerelle/metadata.json, or QEMU's fw_cfg
(``-fw_cfg name=opt/passerelle/metadata,file=metadata.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from passerelle.firstboot.metadata import SourceError

MAX_SIZE = 64 * 1024


def read_json_metadata(path: Path) -> dict[str, object] | None:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from None
    if len(data) > MAX_SIZE:
        raise SourceError(f"{path}: larger than {MAX_SIZE} bytes")
    if not data.strip():
        return None
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SourceError(f"{path}: not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise SourceError(f"{path}: a JSON object is expected, not {type(parsed).__name__}")
    return parsed
