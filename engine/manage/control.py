"""The engine's local control socket: what a command asks the running engine, and its answer.

``passerelle config apply`` hands its file to the engine that follows the store instead of
validating and storing it itself: the engine already has the configuration model built, which a
fresh process would spend most of a second on. The socket is a Unix socket beside the store,
owner-only like the store itself, and the engine also checks the caller's uid.

One request per connection: a JSON header line, then the request's bytes (a configuration file,
as read, so that the engine reports its problems exactly as the command would), then end of
stream. The answer is one JSON object: what the command prints and its exit status.

This module is the command's side and imports nothing heavy; the engine's side is
``control_server``. Its socket is the plain C one, which gevent does not patch: a call blocks
its OS thread, which suits a short-lived command (a gevent process calls it from a thread).
"""

from __future__ import annotations

# `_socket`, not `socket`; not `typing`, `dataclasses` nor `pathlib` at run time: with the
# modules they pull in (the socket module converts every constant to an enum on import) they
# would cost the command more than the engine spends applying its file.
import _socket
import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROTOCOL = 1
# Configuration files carry certificates and keys but stay far below this.
MAX_REQUEST = 64 * 1024 * 1024
# The engine's store waits up to 10 s for another writer; past this the engine is stuck.
REPLY_TIMEOUT = 60.0
_CHUNK = 256 * 1024
# What messages call standard input, as the file readers do.
STDIN_NAME = "<stdin>"


class Outcome:
    """What a command prints and how it exits, whichever process did the work.

    ``failure`` is a command error (status 2), printed by the command line with its prefix.
    """

    __slots__ = ("failure", "status", "stderr", "stdout")

    def __init__(
        self, status: int = 0, stdout: str = "", stderr: str = "", failure: str | None = None
    ) -> None:
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.failure = failure

    def _fields(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "failure": self.failure,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(tuple(self._fields().values()))

    def __repr__(self) -> str:
        return f"Outcome({', '.join(f'{k}={v!r}' for k, v in self._fields().items())})"

    def as_json(self) -> bytes:
        return json.dumps(self._fields()).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Outcome:
        fields = json.loads(data)
        if not isinstance(fields, dict):
            raise ValueError("the answer is not an object")
        failure = fields.get("failure")
        return cls(
            status=int(fields["status"]),
            stdout=str(fields.get("stdout", "")),
            stderr=str(fields.get("stderr", "")),
            failure=None if failure is None else str(failure),
        )


class NoEngine(Exception):
    """No engine listens on the control socket (none runs on that store, or an older one)."""


class NoAnswer(Exception):
    """The engine took the request but gave no usable answer: its outcome is unknown."""


def connect(path: str | os.PathLike[str]) -> _socket.socket:
    """A connection to the engine serving the store, or NoEngine."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError as exc:
        # Whatever the reason (no socket, a stale one, not ours to use, a path too long), the
        # engine received nothing: doing the work in the command instead is always safe.
        sock.close()
        raise NoEngine(f"{path}: {exc.strerror or exc}") from None
    return sock


def encode_request(action: str, fields: dict[str, Any], body: bytes) -> bytes:
    header = {"protocol": PROTOCOL, "action": action, **fields}
    return json.dumps(header).encode() + b"\n" + body


def decode_request(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, body); ValueError if the header is not a JSON object."""
    line, _, body = data.partition(b"\n")
    header = json.loads(line)
    if not isinstance(header, dict):
        raise ValueError("the request header is not an object")
    return header, body


def ask(
    sock: _socket.socket,
    action: str,
    fields: dict[str, Any],
    body: bytes,
    timeout: float = REPLY_TIMEOUT,
) -> Outcome:
    """Send one request on a connection from ``connect`` and wait for the engine's outcome."""
    try:
        sock.settimeout(timeout)
        sock.sendall(encode_request(action, fields, body))
        sock.shutdown(_socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(_CHUNK):
            chunks.append(chunk)
    except TimeoutError:
        raise NoAnswer(f"no answer within {timeout:g} s") from None
    except OSError as exc:
        raise NoAnswer(exc.strerror or str(exc)) from None
    finally:
        sock.close()
    try:
        return Outcome.from_json(b"".join(chunks))
    except (ValueError, KeyError, TypeError):
        raise NoAnswer("the connection closed without a complete answer") from None
