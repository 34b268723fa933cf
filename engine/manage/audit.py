"""The audit log: who changed what, when, and from which address.

One row per change made through the management API (and per login attempt), in the
configuration store's SQLite file, so that a backup of the appliance carries its history.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_KEEP = 100_000
BUSY_TIMEOUT = 10.0

_SCHEMA = """CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    time    REAL    NOT NULL,
    user    TEXT    NOT NULL,
    address TEXT    NOT NULL,
    method  TEXT    NOT NULL,
    path    TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    status  INTEGER NOT NULL,
    version INTEGER
)"""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    time: float  # unix time
    user: str  # '' when nobody could be authenticated
    address: str  # the client's IP address
    method: str
    path: str
    action: str  # what happened, in words
    status: int  # the HTTP status answered
    version: int | None  # the configuration version the change produced, if any


class AuditLog:
    def __init__(self, path: str | Path, *, keep: int = DEFAULT_KEEP) -> None:
        self.path = Path(path)
        self.keep = keep
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def record(
        self,
        *,
        user: str,
        address: str,
        method: str,
        path: str,
        action: str,
        status: int,
        version: int | None = None,
    ) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._conn.execute(
                    "INSERT INTO audit (time, user, address, method, path, action, status, "
                    "version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (time.time(), user, address, method, path, action, status, version),
                )
                newest = cursor.lastrowid or 0
                if newest % 1000 == 0:  # prune now and then, not on every write
                    self._conn.execute("DELETE FROM audit WHERE id <= ?", (newest - self.keep,))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def entries(self, limit: int = 100, before: int | None = None) -> list[AuditEntry]:
        """Newest first; ``before`` pages back from an entry id."""
        sql = "SELECT id, time, user, address, method, path, action, status, version FROM audit"
        params: tuple[int, ...] = (limit,)
        if before is not None:
            sql += " WHERE id < ?"
            params = (before, limit)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id DESC LIMIT ?", params).fetchall()
        return [AuditEntry(*row) for row in rows]
