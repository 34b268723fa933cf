"""Hyper-V: key/value pairs the host sets (KVP "external" pool), as stored by hv_kvp_daemon
in /var/lib/hyperv/.kvp_pool_0 — records of a 512-byte key and a 2048-byte value, UTF-8,
NUL-padded."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

from passerelle.firstboot.metadata import SourceError

KEY_SIZE = 512
VALUE_SIZE = 2048
RECORD_SIZE = KEY_SIZE + VALUE_SIZE
MAX_RECORDS = 4096


def read_kvp_pool(path: Path) -> dict[str, str] | None:
    try:
        with path.open("rb") as f:
            # hv_kvp_daemon rewrites the pool under an fcntl lock; share it to read whole records
            with contextlib.suppress(OSError):
                fcntl.lockf(f, fcntl.LOCK_SH)
            data = f.read(RECORD_SIZE * MAX_RECORDS + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from None
    return parse_kvp_pool(data)


def parse_kvp_pool(data: bytes) -> dict[str, str]:
    if len(data) % RECORD_SIZE:
        raise SourceError(
            f"KVP pool of {len(data)} bytes is not a whole number of {RECORD_SIZE}-byte records"
        )
    if len(data) > RECORD_SIZE * MAX_RECORDS:
        raise SourceError(f"KVP pool has more than {MAX_RECORDS} records")
    pairs: dict[str, str] = {}
    for offset in range(0, len(data), RECORD_SIZE):
        key = _string(data[offset : offset + KEY_SIZE])
        if key:
            pairs[key] = _string(data[offset + KEY_SIZE : offset + RECORD_SIZE])
    return pairs


def _string(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", errors="replace")
