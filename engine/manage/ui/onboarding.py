"""First login: the EULA, a password of the user's own, the licence choice.

Acceptance is kept in ``ui-onboarding.json`` beside the store, so it survives restarts and goes
with the appliance state; a new EULA text (another digest) must be accepted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from passerelle.engine.manage.users import UserStore

STATE_FILE = "ui-onboarding.json"
EULA_FILE = Path(__file__).with_name("eula.txt")


def eula_text() -> str:
    return EULA_FILE.read_text(encoding="utf-8")


def eula_digest() -> str:
    return hashlib.sha256(eula_text().encode("utf-8")).hexdigest()


def load_state(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_state(directory: Path, state: dict[str, Any]) -> None:
    path = directory / STATE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)  # a crash never leaves half a file


def record(directory: Path, step: str, user: str, **details: Any) -> None:
    state = load_state(directory)
    state[step] = {"user": user, "time": time.time(), **details}
    _save_state(directory, state)


def eula_accepted(directory: Path) -> bool:
    return load_state(directory).get("eula", {}).get("sha256") == eula_digest()


def licence_chosen(directory: Path) -> bool:
    return "licence" in load_state(directory)


def password_is_initial(users: UserStore, user: str) -> bool:
    """A password set by someone else (first boot, another admin) was never changed by its user."""
    try:
        account = users.get_user(user)
    except KeyError:
        return False
    return account.password_changed <= account.created


def pending_step(directory: Path, users: UserStore, user: str) -> str | None:
    """The endpoint of the first step this user still has to go through, if any."""
    if not eula_accepted(directory):
        return "ui.welcome_eula"
    if password_is_initial(users, user):
        return "ui.welcome_password"
    if not licence_chosen(directory):
        return "ui.welcome_licence"
    return None
