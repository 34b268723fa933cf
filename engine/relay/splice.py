"""Kernel pipes for zero-copy socket-to-socket copies with ``os.splice``.

Each relay direction moves bytes socket -> pipe -> socket without copying them into Python.
A direction holds a pipe only while bytes are in flight and gives it back, empty, before it
waits for more; pooling the empty pipes saves the three system calls that creating and sizing
one costs.
"""

from __future__ import annotations

import fcntl
import os
import posix

from gevent.socket import wait_read, wait_write

AVAILABLE: bool = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")
FLAGS: int = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if AVAILABLE else 0

# Bigger pipes mean fewer wake-ups per megabyte; the kernel refuses sizes above
# /proc/sys/fs/pipe-max-size (or beyond pipe-user-pages-soft for unprivileged users), in which
# case the default 64 KiB pipe is kept.
PIPE_SIZE = 1 << 20
# Idle pooled pipes still count against the user's pipe page budget: keep the pool small.
POOL_LIMIT = 128


class Pipe:
    __slots__ = ("read_fd", "size", "write_fd")

    def __init__(self, read_fd: int, write_fd: int, size: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.size = size

    def close(self) -> None:
        # posix.close, not os.close: a monkey-patched os.close defers every close through the
        # event loop to protect watched descriptors, and these pipes are never watched.
        posix.close(self.read_fd)
        posix.close(self.write_fd)


_pool: list[Pipe] = []


def acquire() -> Pipe:
    """An empty pipe, from the pool or new."""
    try:
        return _pool.pop()
    except IndexError:
        pass
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        size = fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        size = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
    return Pipe(read_fd, write_fd, size)


def release(pipe: Pipe, empty: bool) -> None:
    """Give a pipe back; one that may still hold bytes is closed, never reused."""
    if empty and len(_pool) < POOL_LIMIT:
        _pool.append(pipe)
    else:
        pipe.close()


def fill(pipe: Pipe, src_fd: int, most: int, timeout: float) -> int:
    """Splice up to ``most`` bytes from socket ``src_fd`` into the empty ``pipe``; 0 at the end
    of the stream. In a greenlet: waits up to ``timeout`` (TimeoutError) for bytes to come."""
    while True:
        try:
            return os.splice(src_fd, pipe.write_fd, min(most, pipe.size), flags=FLAGS)
        except BlockingIOError:
            wait_read(src_fd, timeout)


def drain(pipe: Pipe, dst_fd: int, count: int, timeout: float) -> None:
    """Splice the ``count`` bytes ``pipe`` holds into socket ``dst_fd``. In a greenlet: waits up
    to ``timeout`` (TimeoutError) each time the socket has no room."""
    while count:
        try:
            count -= os.splice(pipe.read_fd, dst_fd, count, flags=FLAGS)
        except BlockingIOError:
            wait_write(dst_fd, timeout)


def _forget_pool() -> None:
    # A forked worker must not splice through the same pipes as its parent.
    while _pool:
        _pool.pop().close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
