"""The first administrator and the console's password reset; there is no default password.

File contract with first boot and the console wizard (see firstboot/README.md), both beside the
store: ``initial-admin-password`` seeds user 'admin' when there is no user yet and is deleted
once that password is changed; ``admin-password-reset`` sets admin's password (creating the user
if needed), ends admin's web sessions and is then deleted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import gevent

from passerelle.engine.manage.users import (
    UserError,
    UserStore,
    generate_password,
    write_secret_file,
)

log = logging.getLogger("passerelle.api")

ADMIN = "admin"
PASSWORD_ENV = "PASSERELLE_ADMIN_PASSWORD"
INITIAL_PASSWORD_FILE = "initial-admin-password"
RESET_FILE = "admin-password-reset"
RESET_INTERVAL = 5.0


def read_password_file(path: Path) -> str:
    """The password in ``path``: its text without the final line break only."""
    text = path.read_text(encoding="utf-8")
    return text.removesuffix("\n").removesuffix("\r")


def initial_admin(
    users: UserStore,
    directory: Path,
    password_file: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> str | None:
    """Create user 'admin' if there is no user at all.

    The password comes from ``password_file``, else $PASSERELLE_ADMIN_PASSWORD, else it is
    generated, written to ``<directory>/initial-admin-password`` (0600) and returned so the
    caller can show it once. Returns None when no password was generated.
    """
    if users.count():
        return None
    if password_file is not None:
        supplied: str | None = read_password_file(password_file)
    else:
        supplied = environ.get(PASSWORD_ENV) or None
    if supplied is not None:
        users.create_user(ADMIN, supplied)
        log.info("created user %r with the supplied password", ADMIN)
        return None
    password = generate_password()
    users.create_user(ADMIN, password)
    write_secret_file(directory / INITIAL_PASSWORD_FILE, password + "\n")
    return password


def forget_initial_password(directory: Path) -> None:
    """Admin chose a password: the one shown on the console is stale."""
    (directory / INITIAL_PASSWORD_FILE).unlink(missing_ok=True)


def apply_password_reset(users: UserStore, directory: Path) -> bool:
    """Carry out a pending console password reset; True if there was one."""
    path = directory / RESET_FILE
    try:
        password = read_password_file(path)
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as exc:
        log.error("%s: cannot read: %s", path, exc)
        return False
    try:
        try:
            users.set_password(ADMIN, password)
        except KeyError:
            users.create_user(ADMIN, password)
        users.end_sessions(ADMIN)
        forget_initial_password(directory)
        log.info("password of %r reset from the console", ADMIN)
    except UserError as exc:
        log.error("%s: refused: %s", path, exc)
    path.unlink(missing_ok=True)  # a refused password would otherwise be retried forever
    return True


def watch_password_reset(users: UserStore, directory: Path) -> None:
    while True:
        try:
            apply_password_reset(users, directory)
        except Exception:  # the watcher must outlive any one bad attempt
            log.exception("admin password reset")
        gevent.sleep(RESET_INTERVAL)
