"""Management users, their password hashes, API tokens and web sessions.

The tables live in the configuration store's SQLite file (its own tables), so one file holds the
whole appliance state and one backup saves it. Passwords are hashed with argon2; API tokens and
session identifiers are long random secrets, so a plain SHA-256 of them is enough at rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gevent
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 work grows with input; refuse absurd sizes before hashing
TOKEN_PREFIX = "pst_"
SESSION_IDLE = 30 * 60.0  # a forgotten browser tab logs itself out
SESSION_MAX = 12 * 3600.0
# Remembering a verified Basic password for a while spares scripts one argon2 run per request.
VERIFIED_FOR = 300.0
BUSY_TIMEOUT = 10.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        name             TEXT PRIMARY KEY,
        password_hash    TEXT NOT NULL,
        created          REAL NOT NULL,
        password_changed REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS api_tokens (
        id        TEXT PRIMARY KEY,
        user      TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        name      TEXT NOT NULL,
        secret    TEXT NOT NULL,
        created   REAL NOT NULL,
        last_used REAL
    )""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id        TEXT PRIMARY KEY,
        user      TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf      TEXT NOT NULL,
        created   REAL NOT NULL,
        last_seen REAL NOT NULL
    )""",
)

T = TypeVar("T")


class UserError(ValueError):
    """A refused user change; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class User:
    name: str
    created: float
    password_changed: float


@dataclass(frozen=True)
class ApiToken:
    id: str
    user: str
    name: str
    created: float
    last_used: float | None


@dataclass(frozen=True)
class Session:
    user: str
    csrf_token: str
    created: float
    expires: float  # the earlier of the idle and the absolute limit


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _off_hub(function: Callable[..., T], *args: Any) -> T:
    # argon2 takes a noticeable fraction of a second by design; run it on a thread so the
    # supervisor's health checks and the other API requests keep running meanwhile.
    return gevent.get_hub().threadpool.apply(function, args)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError("password", f"must be at most {MAX_PASSWORD} characters")


class UserStore:
    """Users, tokens and sessions in the SQLite file at ``path``."""

    def __init__(self, path: str | Path, *, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self.hasher = hasher or PasswordHasher()
        self._lock = threading.Lock()
        self._verified: dict[tuple[str, str], tuple[str, float]] = {}
        self._pepper = secrets.token_bytes(32)  # keys of _verified mean nothing outside
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        self._conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self._transaction():
            for statement in _SCHEMA:
                self._conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- users ---------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._rows("SELECT count(*) FROM users")[0][0])

    def list_users(self) -> list[User]:
        rows = self._rows("SELECT name, created, password_changed FROM users ORDER BY name")
        return [User(*row) for row in rows]

    def get_user(self, name: str) -> User:
        rows = self._rows(
            "SELECT name, created, password_changed FROM users WHERE name = ?", (name,)
        )
        if not rows:
            raise KeyError(name)
        return User(*rows[0])

    def create_user(self, name: str, password: str) -> User:
        if not re.fullmatch(NAME_PATTERN, name):
            raise UserError("name", "letters, digits and _ . @ - only, at most 64 characters")
        check_password(password)
        password_hash = _off_hub(self.hasher.hash, password)
        now = time.time()
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise UserError("name", f"a user named {name!r} already exists")
            conn.execute(
                "INSERT INTO users (name, password_hash, created, password_changed) "
                "VALUES (?, ?, ?, ?)",
                (name, password_hash, now, now),
            )
        return User(name, now, now)

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        password_hash = _off_hub(self.hasher.hash, password)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE users SET password_hash = ?, password_changed = ? WHERE name = ?",
                (password_hash, time.time(), name),
            )
            if cursor.rowcount == 0:
                raise KeyError(name)

    def delete_user(self, name: str) -> None:
        with self._transaction() as conn:
            if conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise KeyError(name)

    def verify_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs; None otherwise (unknown users cost the same)."""
        if len(password) > MAX_PASSWORD:
            return None
        rows = self._rows(
            "SELECT name, created, password_changed, password_hash FROM users WHERE name = ?",
            (name,),
        )
        stored = rows[0][3] if rows else self._dummy_hash
        memo_key = (name, hmac.new(self._pepper, password.encode(), "sha256").hexdigest())
        remembered = self._verified.get(memo_key)
        if rows and remembered and remembered[0] == stored and remembered[1] > time.monotonic():
            return User(*rows[0][:3])
        if not _off_hub(self._matches, stored, password) or not rows:
            return None
        if len(self._verified) > 1000:
            self._verified.clear()
        self._verified[memo_key] = (stored, time.monotonic() + VERIFIED_FOR)
        return User(*rows[0][:3])

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    # -- API tokens ----------------------------------------------------------------------------

    def create_token(self, user: str, name: str) -> tuple[ApiToken, str]:
        """A new token for ``user``; the secret is returned here and never again."""
        token_id = secrets.token_hex(6)
        secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        with self._transaction() as conn:
            if not conn.execute("SELECT 1 FROM users WHERE name = ?", (user,)).fetchone():
                raise KeyError(user)
            conn.execute(
                "INSERT INTO api_tokens (id, user, name, secret, created) VALUES (?, ?, ?, ?, ?)",
                (token_id, user, name, _sha256(secret), now),
            )
        return ApiToken(token_id, user, name, now, None), secret

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        sql = "SELECT id, user, name, created, last_used FROM api_tokens"
        params: tuple[Any, ...] = ()
        if user is not None:
            sql, params = sql + " WHERE user = ?", (user,)
        return [ApiToken(*row) for row in self._rows(sql + " ORDER BY created", params)]

    def get_token(self, token_id: str) -> ApiToken:
        rows = self._rows(
            "SELECT id, user, name, created, last_used FROM api_tokens WHERE id = ?", (token_id,)
        )
        if not rows:
            raise KeyError(token_id)
        return ApiToken(*rows[0])

    def revoke_token(self, token_id: str) -> None:
        with self._transaction() as conn:
            if conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,)).rowcount == 0:
                raise KeyError(token_id)

    def authenticate_token(self, secret: str) -> ApiToken | None:
        match = re.fullmatch(rf"{TOKEN_PREFIX}([0-9a-f]{{12}})_[A-Za-z0-9_\-]{{1,100}}", secret)
        if match is None:
            return None
        rows = self._rows(
            "SELECT id, user, name, created, last_used, secret FROM api_tokens WHERE id = ?",
            (match.group(1),),
        )
        if not rows or not hmac.compare_digest(rows[0][5], _sha256(secret)):
            return None
        now = time.time()
        with self._transaction() as conn:
            conn.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (now, rows[0][0]))
        return ApiToken(*rows[0][:4], now)

    # -- web sessions --------------------------------------------------------------------------

    def create_session(self, user: str) -> tuple[str, Session]:
        """A new session; returns its identifier (the cookie value) and the session."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE last_seen < ?", (now - SESSION_IDLE,))
            conn.execute("DELETE FROM sessions WHERE created < ?", (now - SESSION_MAX,))
            if not conn.execute("SELECT 1 FROM users WHERE name = ?", (user,)).fetchone():
                raise KeyError(user)
            conn.execute(
                "INSERT INTO sessions (id, user, csrf, created, last_seen) VALUES (?, ?, ?, ?, ?)",
                (_sha256(session_id), user, csrf, now, now),
            )
        return session_id, Session(user, csrf, now, min(now + SESSION_IDLE, now + SESSION_MAX))

    def session(self, session_id: str) -> Session | None:
        """The live session for this cookie value, its idle timer restarted; None if expired."""
        key = _sha256(session_id)
        now = time.time()
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT user, csrf, created, last_seen FROM sessions WHERE id = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            user, csrf, created, last_seen = row
            if last_seen < now - SESSION_IDLE or created < now - SESSION_MAX:
                conn.execute("DELETE FROM sessions WHERE id = ?", (key,))
                return None
            conn.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", (now, key))
        return Session(user, csrf, created, min(now + SESSION_IDLE, created + SESSION_MAX))

    def end_session(self, session_id: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (_sha256(session_id),))

    def end_sessions(self, user: str, *, keep: str | None = None) -> None:
        """End every session of ``user`` except the one whose cookie value is ``keep``."""
        keep_key = _sha256(keep) if keep else ""
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE user = ? AND id != ?", (user, keep_key))


def generate_password() -> str:
    """A password that survives being read off a console: no look-alike characters."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4)]
    return "-".join(groups)


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, never wider even briefly."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(temporary, path)
