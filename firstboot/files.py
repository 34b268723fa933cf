"""Writing files so that a crash or power cut never leaves half of one behind."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text``; a secret (mode 0600) is never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_secret(path: Path, text: str) -> None:
    write_atomically(path, text, 0o600)


def read_first_line(path: Path) -> str | None:
    """The first line of a small file without its line ending, or None when unreadable."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return f.readline(4096).rstrip("\r\n")
    except OSError:
        return None
