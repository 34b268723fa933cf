"""``nonblocking_io`` built from C and run from source behave as ``os.read`` and ``os.write``
do, over real sockets; the request path uses the built one."""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import socket
from collections.abc import Iterator
from types import ModuleType

import pytest

from passerelle.engine import compiled
from passerelle.engine.http import lane
from passerelle.engine.relay import spliced
from passerelle.engine.runtime import nonblocking_io

MODULE = "passerelle.engine.runtime.nonblocking_io"
# Above any process's descriptor limit. (A descriptor closed here would not do: gevent's
# os.close may leave it open for a while.)
NEVER_OPEN = 2**30


def _from_source() -> ModuleType:
    path = compiled.source_path(MODULE).removesuffix(".c") + ".py"
    spec = importlib.util.spec_from_file_location("nonblocking_io_from_source", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["built", "source"])
def io(request) -> ModuleType:
    if request.param == "source":
        return _from_source()
    assert compiled.describe() == "compiled", "run scripts/setup to build it"
    return nonblocking_io


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def test_the_request_path_uses_the_built_module():
    assert compiled.describe() == "compiled", "run scripts/setup to build it"
    assert nonblocking_io.__file__ == compiled.usable_build()[0][MODULE]
    assert nonblocking_io.read is not os.read
    assert lane._os_read is nonblocking_io.read and lane._os_write is nonblocking_io.write
    assert spliced._os_read is nonblocking_io.read and spliced._os_write is nonblocking_io.write


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_what_is_written_is_read_back(io, pair, kind):
    ours, theirs = pair
    assert io.write(ours.fileno(), kind(b"GET / HTTP/1.1\r\n\r\n")) == 18
    assert theirs.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
    theirs.sendall(b"HTTP/1.1 200 OK\r\n")
    assert io.read(ours.fileno(), 65536) == b"HTTP/1.1 200 OK\r\n"


def test_a_read_gives_at_most_size_and_leaves_the_rest(io, pair):
    ours, theirs = pair
    theirs.sendall(b"abcdef")
    assert io.read(ours.fileno(), 4) == b"abcd"
    assert io.read(ours.fileno(), 4) == b"ef"


def test_nothing_to_read_is_blocking_io_error_and_the_end_is_empty(io, pair):
    ours, theirs = pair
    with pytest.raises(BlockingIOError):
        io.read(ours.fileno(), 100)
    theirs.shutdown(socket.SHUT_WR)
    assert io.read(ours.fileno(), 100) == b""


def test_a_read_larger_than_the_kept_buffer_returns_all_that_came(io, pair):
    ours, theirs = pair
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sent = bytes(range(256)) * 800  # 204,800 bytes
    theirs.sendall(sent)
    got = io.read(ours.fileno(), 1 << 20)
    assert len(got) > 65536
    assert got == sent[: len(got)]


def test_a_full_socket_takes_part_then_refuses(io, pair):
    ours, theirs = pair
    chunk = b"x" * 65536
    accepted = 0
    with pytest.raises(BlockingIOError):
        for _ in range(1000):
            written = io.write(ours.fileno(), chunk)
            assert 0 < written <= len(chunk)
            accepted += written
    received = 0
    theirs.setblocking(False)
    while True:
        try:
            received += len(theirs.recv(1 << 20))
        except BlockingIOError:
            break
    assert received == accepted


def test_a_peer_gone_is_the_error_os_write_gives(io, pair):
    ours, theirs = pair
    theirs.close()
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        io.write(ours.fileno(), b"late")


def test_bad_arguments_are_the_errors_os_gives(io, pair):
    ours, _ = pair
    with pytest.raises(OSError) as closed:
        io.read(NEVER_OPEN, 10)
    assert closed.value.errno == errno.EBADF
    with pytest.raises(OSError) as negative:
        io.read(ours.fileno(), -1)
    assert negative.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        io.read(ours.fileno(), 1.5)
    with pytest.raises(TypeError):
        io.write(ours.fileno(), "text")
    with pytest.raises(TypeError):
        io.read(ours.fileno())


def test_a_signal_during_a_read_runs_its_handler_then_the_read_goes_on(io):
    # A blocking pipe, only here: the read waits, the alarm interrupts it, the handler writes
    # what the read then returns.
    read_end, write_end = os.pipe()
    previous = signal.signal(signal.SIGALRM, lambda *_: os.write(write_end, b"after the signal"))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert io.read(read_end, 100) == b"after the signal"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.close(read_end)
        os.close(write_end)


def test_a_handler_that_raises_ends_the_read_with_its_exception(io):
    read_end, write_end = os.pipe()

    def interrupt(*_) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(KeyboardInterrupt):
            io.read(read_end, 100)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.close(read_end)
        os.close(write_end)
