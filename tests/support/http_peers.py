"""Raw-socket HTTP peers for protocol tests: byte-exact clients and scriptable real servers.

http.client and the sample servers hide framing; these peers see every byte, so a test can
check how a body was framed, send hostile input, or make a real server misbehave on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from gevent.server import StreamServer

from support.engine import EngineProcess, free_port

TIMEOUT = 5.0


@dataclass
class Head:
    """A request or response head; header names are lowercased, order is kept."""

    start: bytes
    headers: list[tuple[bytes, bytes]]
    raw: bytes

    def get(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def get_all(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]

    @property
    def status(self) -> int:
        return int(self.start.split(b" ", 2)[1])

    @property
    def method(self) -> bytes:
        return self.start.split(b" ", 1)[0]

    @property
    def target(self) -> bytes:
        return self.start.split(b" ", 2)[1]

    @property
    def chunked(self) -> bool:
        return (self.get(b"transfer-encoding") or b"").lower() == b"chunked"

    @property
    def content_length(self) -> int | None:
        value = self.get(b"content-length")
        return None if value is None else int(value)


def parse_head(raw: bytes) -> Head:
    lines = raw[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.lower(), value.strip()))
    return Head(lines[0], headers, raw)


@dataclass
class Message:
    """A head with its de-framed body; ``chunks`` holds the chunk sizes of a chunked body."""

    head: Head
    body: bytes = b""
    chunks: list[int] = field(default_factory=list)
    connection: int = 0  # which accepted connection carried it (servers only)

    @property
    def status(self) -> int:
        return self.head.status

    def json(self) -> dict:
        return json.loads(self.body)


class Stream:
    """A socket with a read buffer, for either side of a connection."""

    def __init__(self, sock: socket.socket, timeout: float = TIMEOUT) -> None:
        self.sock = sock
        self.buffer = b""
        sock.settimeout(timeout)

    @classmethod
    def connect(cls, port: int, address: str = "127.0.0.1", source: str | None = None) -> Stream:
        sock = socket.create_connection(
            (address, port), timeout=TIMEOUT, source_address=(source, 0) if source else None
        )
        return cls(sock)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _more(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def head(self) -> Head | None:
        """The next head; None when the peer closes before sending one byte of it."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if not self._more():
                if self.buffer:
                    raise EOFError(f"closed inside a head: {self.buffer[:200]!r}")
                return None
        raw, self.buffer = self.buffer[: end + 4], self.buffer[end + 4 :]
        return parse_head(raw)

    def exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._more():
                raise EOFError(f"closed after {len(self.buffer)} of {size} bytes")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if not self._more():
                raise EOFError("closed inside a line")
        data, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
        return data

    def chunked(self) -> tuple[bytes, list[int]]:
        """A chunked body (trailers dropped), strictly framed: any slip raises."""
        parts: list[bytes] = []
        sizes: list[int] = []
        while True:
            size = int(self.line().split(b";")[0], 16)
            if size == 0:
                while self.line():
                    pass
                return b"".join(parts), sizes
            parts.append(self.exact(size))
            sizes.append(size)
            if self.exact(2) != b"\r\n":
                raise ValueError("chunk data not followed by CRLF")

    def until_close(self) -> bytes:
        while self._more():
            pass
        data, self.buffer = self.buffer, b""
        return data

    def body(self, head: Head, *, request: bool, bodyless: bool = False) -> Message:
        """The body that ``head`` frames; ``bodyless`` for answers to HEAD, 1xx, 204, 304."""
        if bodyless:
            return Message(head)
        if head.chunked:
            body, sizes = self.chunked()
            return Message(head, body, sizes)
        length = head.content_length
        if length is not None:
            return Message(head, self.exact(length))
        if request:
            return Message(head)
        return Message(head, self.until_close())

    def response(self, method: bytes = b"GET") -> Message:
        """The next final response, 1xx skipped; raises EOFError if the peer closes first."""
        while True:
            head = self.head()
            if head is None:
                raise EOFError("closed before a response")
            status = head.status
            if 100 <= status < 200 and status != 101:
                continue
            bodyless = method == b"HEAD" or status in (101, 204, 304)
            return self.body(head, request=False, bodyless=bodyless)

    def request(self) -> Message | None:
        head = self.head()
        return None if head is None else self.body(head, request=True)

    def idle_for(self, seconds: float) -> bool:
        """Whether nothing at all (no byte, no close) arrives within ``seconds``."""
        before = len(self.buffer)
        closed = self.closed_within(seconds)
        return not closed and len(self.buffer) == before

    def closed_within(self, seconds: float) -> bool:
        """Whether the peer closes (EOF or reset) within ``seconds``; data is kept."""
        deadline = time.monotonic() + seconds
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if not self._more():
                    return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(TIMEOUT)
        return False


Handler = Callable[[Stream, "RawServer", int], None]


class RawServer:
    """A real server whose every connection runs ``handler(stream, server, index)``."""

    def __init__(self, handler: Handler, address: str = "127.0.0.1") -> None:
        self.handler = handler
        self.address = address
        self.port = 0
        self.accepted = 0
        self.requests: list[Message] = []
        self.errors: list[str] = []
        self._server: StreamServer | None = None

    def start(self) -> RawServer:
        self._server = StreamServer((self.address, 0), self._accept)
        self._server.start()
        self.port = self._server.server_port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)

    def _accept(self, sock: socket.socket, _peer: tuple) -> None:
        index = self.accepted
        self.accepted += 1
        stream = Stream(sock, timeout=10.0)
        try:
            self.handler(stream, self, index)
        except (OSError, EOFError, ValueError) as exc:
            self.errors.append(f"connection {index}: {exc!r}")
        finally:
            stream.close()


Respond = Callable[[Message], bytes | None]


def serving(respond: Respond) -> Handler:
    """A handler that reads requests in turn, records them and sends what ``respond`` gives.

    ``respond`` returning None closes the connection without an answer.
    """

    def handle(stream: Stream, server: RawServer, index: int) -> None:
        while (message := stream.request()) is not None:
            message.connection = index
            server.requests.append(message)
            answer = respond(message)
            if answer is None:
                return
            stream.send(answer)

    return handle


def response(
    status: int = 200,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    length: bool = True,
) -> bytes:
    """An HTTP/1.1 response, with Content-Length unless ``length`` is False."""
    lines = [b"HTTP/1.1 %d Status" % status]
    for name, value in headers or []:
        lines.append(name + b": " + value)
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Deployer:
    """One engine for a whole test module: each test swaps in its own virtual services."""

    def __init__(self, engine: EngineProcess) -> None:
        self.engine = engine

    def deploy(
        self,
        *services: dict,
        certificates: list[dict] | None = None,
    ) -> list[int]:
        """Apply ``services`` (each without ports) on fresh ports; returns the ports in order."""
        ports = []
        config_services = []
        for i, vs in enumerate(services):
            port = free_port()
            ports.append(port)
            config_services.append(
                {"name": f"vs{i}", "address": "127.0.0.1", **vs, "ports": [port]}
            )
        self.engine.apply({"certificates": certificates or [], "virtual_services": config_services})
        return ports


def l7_service(*servers: object, **extra: object) -> dict:
    """An L7 service over ``servers`` (anything with address and port), unchecked health.

    No health check: a probe would open connections of its own to the server under test.
    """
    return {
        "mode": "http",
        "health_check": {"type": "none"},
        "real_servers": [
            {"address": s.address, "port": s.port}  # type: ignore[attr-defined]
            for s in servers
        ],
        **extra,
    }


class RawServers:
    """Raw servers started by one test, stopped at its end."""

    def __init__(self) -> None:
        self.started: list[RawServer] = []

    def __call__(self, handler: Handler, address: str = "127.0.0.1") -> RawServer:
        server = RawServer(handler, address).start()
        self.started.append(server)
        return server

    def stop(self) -> None:
        for server in self.started:
            server.stop()


def shared_deployer(folder: str, workers: int) -> Callable[..., Iterator[Deployer]]:
    """A module-scoped ``l7`` fixture: ``l7 = shared_deployer("tls", workers=2)`` in a test
    module; one engine, with no service until a test deploys its own."""

    @pytest.fixture(scope="module", name="l7")
    def l7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployer]:
        engine = EngineProcess(tmp_path_factory.mktemp(folder), workers=workers)
        engine.start({"virtual_services": []})
        yield Deployer(engine)
        engine.stop()

    return l7


def curl_json(*arguments: str) -> dict:
    """What the sample server saw, as curl fetched it; curl failing fails the test."""
    result = subprocess.run(
        ["curl", "-sS", "--fail", "--max-time", "5", *arguments],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def websocket_echo(stream: Stream, server: RawServer, index: int) -> None:
    head = stream.head()
    assert head is not None
    server.requests.append(Message(head))
    if head.get(b"upgrade") != b"websocket":
        stream.send(response(403, b"upgrade only", [(b"Connection", b"close")]))
        return
    stream.send(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nserver-first"
    )
    if stream.buffer:
        stream.send(b"echo:" + stream.buffer)
        stream.buffer = b""
    while data := stream.sock.recv(65536):
        stream.send(b"echo:" + data)


UPGRADE_REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
