"""Ports handed to a process that binds them later must not be taken in the meantime."""

import itertools
import socket
from pathlib import Path

from passerelle.testing import ports
from passerelle.testing.ports import free_port


def _ephemeral_range() -> range:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_a_handed_out_port_is_one_the_kernel_never_picks_by_itself():
    picked = {free_port() for _ in range(200)}
    assert len(picked) == 200
    assert not picked & set(_ephemeral_range())
    with socket.socket() as kernel_choice:
        kernel_choice.bind(("127.0.0.1", 0))
        assert kernel_choice.getsockname()[1] in _ephemeral_range()


def test_a_port_something_holds_is_passed_over(monkeypatch):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port()))
        held = holder.getsockname()[1]
        # The next port it would try is the held one.
        monkeypatch.setattr(ports, "_cursor", itertools.count(held - ports._LOWEST))
        handed = free_port()
    assert handed != held
    assert handed not in _ephemeral_range()


def test_udp_ports_are_checked_as_udp():
    port = free_port(kind=socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
