"""The engine's side of the control socket (see ``control``): owner-only, one request per
connection, each action answered by a handler that returns the command's Outcome."""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gevent.server import StreamServer

from passerelle.engine.manage.control import MAX_REQUEST, PROTOCOL, Outcome, decode_request

log = logging.getLogger("passerelle.control")

Handler = Callable[[dict[str, Any], bytes], Outcome]

# A client that connects and then sends nothing must not hold a greenlet forever.
REQUEST_TIMEOUT = 30.0
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
_CHUNK = 256 * 1024


class ControlServer:
    """Serves ``handlers`` (action name -> handler) on a Unix socket at ``path``."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.handlers = dict(handlers)
        self._server: StreamServer | None = None
        self._inode: int | None = None

    def start(self) -> None:
        """Listen at ``path``, replacing a socket left by an engine that did not stop cleanly.
        Raises OSError when the socket cannot be made (the engine runs on without it)."""
        listener = _bind_owner_only(self.path)
        self._inode = os.stat(self.path).st_ino
        self._server = StreamServer(listener, self._serve)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None
        # Only our own socket: another engine started on the same store may have replaced it.
        try:
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        except OSError:
            pass
        self._inode = None

    def _serve(self, conn: socket.socket, _: Any) -> None:
        try:
            if not _trusted(conn):
                return  # not a word to a stranger: it cannot even learn the protocol
            conn.settimeout(REQUEST_TIMEOUT)
            request = _read_request(conn)
            if request == b"":
                return  # the command connected and thought better of it
            conn.sendall(self._answer(request).as_json())
        except OSError as exc:
            log.warning("control socket: %s", exc)
        finally:
            conn.close()

    def _answer(self, data: bytes | None) -> Outcome:
        if data is None:
            return Outcome(status=2, failure=f"request larger than {MAX_REQUEST} bytes")
        try:
            header, body = decode_request(data)
        except ValueError:
            return Outcome(status=2, failure="the engine could not read the request")
        if header.get("protocol") != PROTOCOL:
            return Outcome(
                status=2,
                failure=f"this engine speaks control protocol {PROTOCOL}, "
                f"the command {header.get('protocol')!r}: use the engine's own command",
            )
        handler = self.handlers.get(str(header.get("action")))
        if handler is None:
            return Outcome(status=2, failure=f"the engine has no action {header.get('action')!r}")
        try:
            return handler(header, body)
        except Exception:
            # The request may or may not have been stored: say so rather than guess.
            log.exception("control action %s failed", header.get("action"))
            return Outcome(status=2, failure="the engine failed on this request (see its log)")


def _bind_owner_only(path: Path) -> socket.socket:
    """A listening socket at ``path`` that only its owner may connect to.

    Bound under a temporary name and renamed once it is mode 0600, so the final path is never
    open to others, not even for an instant (the uid check covers the temporary name).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        temporary.unlink(missing_ok=True)
        sock.bind(str(temporary))
        os.chmod(temporary, 0o600)
        sock.listen(64)
        os.replace(temporary, path)
    except OSError:
        sock.close()
        temporary.unlink(missing_ok=True)
        raise
    return sock


def _trusted(conn: socket.socket) -> bool:
    """Root, or the user the engine runs as: the same people who can write the store."""
    _, uid, _ = _PEERCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    if uid in (0, os.geteuid()):
        return True
    log.warning("control socket: refused a connection from uid %d", uid)
    return False


def _read_request(conn: socket.socket) -> bytes | None:
    """Everything up to the client's end of stream; None past MAX_REQUEST."""
    chunks: list[bytes] = []
    size = 0
    while chunk := conn.recv(_CHUNK):
        size += len(chunk)
        if size > MAX_REQUEST:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
