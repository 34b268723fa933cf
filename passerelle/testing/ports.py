"""Ports to hand to a process that binds them later (an engine, a back end, QEMU's forwards)."""

from __future__ import annotations

import itertools
import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Handed-out ports come from below the kernel's ephemeral range: a socket bound to port 0, or
# an outgoing connection's source port, can then never take one before its owner binds it.
# (A sample server bound to port 0 once took an engine's admin port that way.)
_LOWEST = 10000
_SPAN = _ephemeral_floor() - _LOWEST
# A random start keeps concurrent processes apart; the cursor does not repeat a port.
_cursor = itertools.count(random.randrange(_SPAN))


def free_port(address: str = LOOPBACK, kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing is bound to now, and one the kernel will not pick by itself."""
    for _ in range(_SPAN):
        port = _LOWEST + next(_cursor) % _SPAN
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on {address} from {_LOWEST} to {_LOWEST + _SPAN - 1}")
