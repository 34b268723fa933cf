"""The versioned configuration store: every applied configuration is one row in SQLite.

The command line, the engine and the REST API each open the same file from their own process.
WAL lets the engine keep reading while an apply commits, and ``BEGIN IMMEDIATE`` serialises
writers, so version numbers are never handed out twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passerelle.engine.manage.location import DEFAULT_PATH as DEFAULT_PATH
from passerelle.engine.manage.location import PATH_ENV as PATH_ENV
from passerelle.engine.manage.location import store_path as store_path
from passerelle.engine.model.config import Config
from passerelle.engine.model.errors import ConfigError, validate_config
from passerelle.engine.model.ha import keep_local_ha

SCHEMA_VERSION = 1
DEFAULT_KEEP = 1000
# Long enough for another process's apply (a few milliseconds) to finish, short enough that a
# stuck writer shows up as an error rather than a hang.
BUSY_TIMEOUT = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    number  INTEGER PRIMARY KEY,
    created REAL    NOT NULL,
    author  TEXT    NOT NULL,
    comment TEXT    NOT NULL,
    digest  TEXT    NOT NULL,
    body    TEXT    NOT NULL
)
"""


@dataclass(frozen=True)
class Version:
    number: int
    created: float  # unix time
    author: str
    comment: str
    digest: str  # sha256 of the canonical JSON


class StoreError(Exception):
    """The store cannot be opened or read."""


class StaleVersionError(StoreError):
    """Someone else applied a configuration after the caller read the one it edited."""

    def __init__(self, expected: int, latest: int) -> None:
        super().__init__(f"expected version {expected} but the latest is {latest}")
        self.expected = expected
        self.latest = latest


class CorruptVersionError(StoreError):
    """A stored row no longer reads back as a valid configuration."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"stored version {number} is unreadable: {reason}")
        self.number = number
        self.reason = reason


def canonical_json(config: Config) -> str:
    """The exact text stored and hashed: equal configurations give equal text."""
    return json.dumps(
        config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def digest_of(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class ConfigStore:
    """History of configurations in one SQLite file; safe for several processes at once.

    ``keep`` bounds the history (oldest versions are pruned on apply); ``None`` keeps all.
    """

    def __init__(self, path: str | Path, *, keep: int | None = DEFAULT_KEEP) -> None:
        if keep is not None and keep < 1:
            raise ValueError("keep must be at least 1")
        self.path = Path(path)
        self.keep = keep
        self._lock = threading.Lock()  # one connection, possibly shared by threads
        self._parsed: tuple[int, str, Config] | None = None  # rows never change: cache last read
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            # Certificates' private keys live in here: create the file owner-only before SQLite
            # does (its -wal and -shm files copy these permissions).
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot open {self.path}: {exc.strerror or exc}") from None
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            with self._transaction(conn):
                found = conn.execute("PRAGMA user_version").fetchone()[0]
                if found > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} uses schema {found}, newer than this version "
                        f"understands ({SCHEMA_VERSION})"
                    )
                conn.execute(_SCHEMA)
                if found < SCHEMA_VERSION:
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        except StoreError:
            if conn is not None:
                conn.close()
            raise
        return conn

    @staticmethod
    @contextlib.contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front: two writers never both read the same latest
        # number and then collide on insert.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ConfigStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None

    def latest_number(self) -> int:
        """The newest version number, 0 when empty; cheap enough to poll."""
        return int(self._query("SELECT coalesce(max(number), 0) FROM versions")[0][0])

    def current(self) -> tuple[Version | None, Config]:
        rows = self._query(
            "SELECT number, created, author, comment, digest, body FROM versions "
            "ORDER BY number DESC LIMIT 1"
        )
        if not rows:
            return None, Config()
        return self._decode(rows[0])

    def get(self, number: int) -> tuple[Version, Config]:
        rows = self._query(
            "SELECT number, created, author, comment, digest, body FROM versions WHERE number = ?",
            (number,),
        )
        if not rows:
            raise KeyError(number)
        return self._decode(rows[0])

    def history(self, limit: int = 50) -> list[Version]:
        """Newest first."""
        rows = self._query(
            "SELECT number, created, author, comment, digest FROM versions "
            "ORDER BY number DESC LIMIT ?",
            (limit,),
        )
        return [Version(*row) for row in rows]

    def apply(
        self,
        config: Config,
        *,
        author: str = "cli",
        comment: str = "",
        expected: int | None = None,
    ) -> Version:
        """Store ``config`` as the new current version, atomically.

        With ``expected``, refuse (StaleVersionError) unless it is still the latest number.
        Applying a configuration equal to the current one returns the current version.
        """
        return self.apply_if_changed(config, author=author, comment=comment, expected=expected)[0]

    def apply_if_changed(
        self,
        config: Config,
        *,
        author: str = "cli",
        comment: str = "",
        expected: int | None = None,
    ) -> tuple[Version, bool]:
        """Like apply, and also tell whether a new version was added (False: unchanged)."""
        body = canonical_json(config)
        digest = digest_of(body)
        try:
            with self._lock, self._transaction(self._conn):
                row = self._conn.execute(
                    "SELECT number, created, author, comment, digest FROM versions "
                    "ORDER BY number DESC LIMIT 1"
                ).fetchone()
                latest = Version(*row) if row else None
                latest_number = latest.number if latest else 0
                if expected is not None and expected != latest_number:
                    raise StaleVersionError(expected, latest_number)
                if latest is not None and latest.digest == digest:
                    return latest, False
                version = Version(latest_number + 1, time.time(), author, comment, digest)
                self._conn.execute(
                    "INSERT INTO versions (number, created, author, comment, digest, body) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (*_fields(version), body),
                )
                if self.keep is not None:
                    self._conn.execute(
                        "DELETE FROM versions WHERE number <= ?", (version.number - self.keep,)
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write {self.path}: {exc}") from None
        self._parsed = (version.number, body, config)
        return version, True

    def rollback(self, number: int, *, author: str = "cli") -> Version:
        """Apply version ``number`` again, as a new version (KeyError if unknown)."""
        return self.rollback_if_changed(number, author=author)[0]

    def rollback_if_changed(self, number: int, *, author: str = "cli") -> tuple[Version, bool]:
        """Like rollback, and also tell whether a new version was added."""
        _, config = self.get(number)
        config = keep_local_ha(config, self.current()[1])
        return self.apply_if_changed(config, author=author, comment=f"rollback to {number}")

    def _decode(self, row: tuple[Any, ...]) -> tuple[Version, Config]:
        *fields, body = row
        version = Version(*fields)
        cached = self._parsed
        if cached is not None and cached[0] == version.number and cached[1] == body:
            return version, cached[2]
        if digest_of(body) != version.digest:
            raise CorruptVersionError(version.number, "its content does not match its digest")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise CorruptVersionError(version.number, f"invalid JSON: {exc}") from None
        try:
            config = validate_config(data)
        except ConfigError as exc:
            raise CorruptVersionError(version.number, str(exc)) from None
        self._parsed = (version.number, body, config)
        return version, config


def _fields(version: Version) -> tuple[int, float, str, str, str]:
    return (version.number, version.created, version.author, version.comment, version.digest)
