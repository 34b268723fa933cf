"""Content-keyed cache of root filesystem layers (``$PASSERELLE_IMAGE_CACHE``)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CACHE_ENV = "PASSERELLE_IMAGE_CACHE"


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "passerelle" / "image"


def key_of(inputs: dict[str, Any]) -> str:
    """A short digest of everything that determines a layer's content."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class LayerCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, kind: str, key: str) -> Path:
        return self.root / f"{kind}-{key}.tar"

    def get(self, kind: str, key: str) -> Path | None:
        path = self.path(kind, key)
        return path if path.is_file() else None

    def partial(self, kind: str, key: str) -> Path:
        """Where to write a layer before :meth:`commit` publishes it under its final name."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f".{kind}-{key}.{os.getpid()}.partial.tar"

    def commit(self, partial: Path, kind: str, key: str, inputs: dict[str, Any]) -> Path:
        final = self.path(kind, key)
        final.with_suffix(".json").write_text(json.dumps(inputs, indent=1, sort_keys=True))
        os.replace(partial, final)
        return final
