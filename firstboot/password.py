"""The admin password files the management plane consumes (see README.md for the contract)."""

from __future__ import annotations

import secrets

from passerelle.firstboot.files import read_first_line, write_secret
from passerelle.firstboot.paths import Paths

# No 0/O, 1/I/L: the password is read off a console screen and typed elsewhere.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
GROUPS, GROUP_SIZE = 4, 4


def generate_password() -> str:
    """Four groups of four characters, e.g. "K7QM-2XHD-9RTW-EPAF" (about 79 bits)."""
    return "-".join(
        "".join(secrets.choice(ALPHABET) for _ in range(GROUP_SIZE)) for _ in range(GROUPS)
    )


def write_initial_password(paths: Paths, password: str) -> None:
    write_secret(paths.initial_password, password + "\n")


def read_initial_password(paths: Paths) -> str | None:
    line = read_first_line(paths.initial_password)
    return line or None


def request_password_reset(paths: Paths, password: str) -> None:
    """Hand a new admin password to the management plane; the shown initial one is now stale."""
    write_secret(paths.password_reset, password + "\n")
    paths.initial_password.unlink(missing_ok=True)
