"""What the API works on: the stores, the engine's live figures and the listener's own address."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app
from gevent.lock import RLock

from passerelle.engine.manage.api.ratelimit import FailureLimiter
from passerelle.engine.manage.audit import AuditLog
from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.manage.users import UserStore

StatsProvider = Callable[[], list[dict[str, Any]]]
MetricsProvider = Callable[[], str]
StatusProvider = Callable[[], dict[str, Any]]

EXTENSION = "passerelle"


@dataclass
class ApiContext:
    store: ConfigStore
    users: UserStore
    audit: AuditLog
    directory: Path  # the appliance's state files (initial-admin-password, ...)
    stats: StatsProvider | None = None
    metrics: MetricsProvider | None = None
    status: StatusProvider | None = None
    # address:port pairs no virtual service may take (the management listener itself)
    reserved: tuple[tuple[str, int], ...] = ()
    limiter: FailureLimiter = field(default_factory=FailureLimiter)
    # Edits made through this process queue here; edits from other processes (the command
    # line) are caught by the store's version check and retried.
    edit_lock: RLock = field(default_factory=RLock)


def context() -> ApiContext:
    return current_app.extensions[EXTENSION]
