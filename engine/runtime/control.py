"""The supervisor <-> worker channel: length-prefixed JSON messages over a Unix socket pair.

Messages are dicts with a ``type``. A request carries an ``id``; its reply carries the same
``id`` and type ``reply``. Either end may send requests, notifications and replies at any time;
one reader greenlet per channel dispatches them.
"""

from __future__ import annotations

import itertools
import json
import logging
import struct
from collections.abc import Callable
from socket import socket
from typing import Any

import gevent
from gevent.event import AsyncResult
from gevent.lock import Semaphore

log = logging.getLogger(__name__)

Message = dict[str, Any]
Handler = Callable[[Message], Message | None]
_HEADER = struct.Struct("!I")


class ChannelClosed(ConnectionError):
    pass


class Channel:
    def __init__(self, sock: socket, handler: Handler) -> None:
        self._sock = sock
        self._handler = handler
        self._ids = itertools.count(1)
        self._pending: dict[int, AsyncResult] = {}
        self._write_lock = Semaphore()
        self._reader = gevent.spawn(self._read_loop)
        self.closed = False

    def send(self, message: Message) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        with self._write_lock:
            try:
                self._sock.sendall(_HEADER.pack(len(data)) + data)
            except OSError as exc:
                raise ChannelClosed(str(exc)) from exc

    def request(self, message: Message, timeout: float = 5.0) -> Message:
        ident = next(self._ids)
        result = AsyncResult()
        self._pending[ident] = result
        try:
            self.send({**message, "id": ident})
            return result.get(timeout=timeout)
        finally:
            self._pending.pop(ident, None)

    def close(self) -> None:
        self.closed = True
        self._reader.kill(block=False)
        self._sock.close()
        for result in self._pending.values():
            result.set_exception(ChannelClosed("channel closed"))

    def join(self, timeout: float | None = None) -> None:
        self._reader.join(timeout)

    def _read_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self._sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ChannelClosed("peer closed the channel")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _read_loop(self) -> None:
        try:
            while True:
                (size,) = _HEADER.unpack(self._read_exactly(_HEADER.size))
                message = json.loads(self._read_exactly(size))
                if message.get("type") == "reply":
                    pending = self._pending.get(message.get("id", 0))
                    if pending is not None:
                        pending.set(message)
                    continue
                # Requests run in their own greenlet so a slow one never stalls the channel.
                gevent.spawn(self._dispatch, message)
        except (ChannelClosed, OSError):
            pass
        finally:
            self.closed = True
            for result in list(self._pending.values()):
                result.set_exception(ChannelClosed("channel closed"))

    def _dispatch(self, message: Message) -> None:
        try:
            reply = self._handler(message)
        except Exception:
            log.exception("control message %s failed", message.get("type"))
            reply = {"error": "internal error"}
        if "id" in message:
            self.send({**(reply or {}), "type": "reply", "id": message["id"]})
