"""Reads and writes on non-blocking descriptors, for the request path's hottest calls:
``read(fd, size) -> bytes`` and ``write(fd, data) -> int``, as ``os.read`` and ``os.write``.

Built (``python -m passerelle.compile_hot_path``), this module is ``nonblocking_io.c``. It
keeps the GIL through the system call: on a non-blocking descriptor the call returns at once,
and releasing and retaking the GIL around it is about 500 instructions a call, four calls a
proxied request. It also reads into one buffer it keeps and returns bytes of the size read,
where ``os.read`` allocates ``size`` bytes on every call and cuts them down. Together that was a
third of an L4 request's instructions and a ninth of an L7 request's.

Run from source, the two are ``os.read`` and ``os.write``, which behave the same. Never give
either a blocking descriptor: the built one would stop every greenlet of the worker while it
waits.
"""

from __future__ import annotations

import os

read = os.read
write = os.write
