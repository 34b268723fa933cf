"""The management plane of one engine: users, audit, the API app and its HTTPS listener."""

from __future__ import annotations

import logging
from pathlib import Path

import gevent
from argon2 import PasswordHasher

from passerelle.engine.manage.api.app import create_app
from passerelle.engine.manage.api.bootstrap import (
    apply_password_reset,
    initial_admin,
    watch_password_reset,
)
from passerelle.engine.manage.api.context import MetricsProvider, StatsProvider, StatusProvider
from passerelle.engine.manage.api.listener import (
    ManagementListener,
    management_certificate,
    tls_context,
)
from passerelle.engine.manage.api.ratelimit import FailureLimiter
from passerelle.engine.manage.audit import AuditLog
from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.manage.users import UserStore

log = logging.getLogger("passerelle.api")


class ManagementPlane:
    """Everything behind ``https://<management address>/api/v1`` for the store at ``store``."""

    def __init__(
        self,
        store: ConfigStore,
        address: str,
        port: int,
        *,
        stats: StatsProvider | None = None,
        metrics: MetricsProvider | None = None,
        status: StatusProvider | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        hasher: PasswordHasher | None = None,
        limiter: FailureLimiter | None = None,
        system_root: Path | None = None,
        system_mode: str | None = None,
    ) -> None:
        self.directory = store.path.parent
        self.users = UserStore(store.path, hasher=hasher)
        self.audit = AuditLog(store.path)
        self.app = create_app(
            store,
            self.users,
            self.audit,
            stats=stats,
            metrics=metrics,
            status=status,
            reserved=[(address, port)],
            limiter=limiter,
            directory=self.directory,
            system_root=system_root,
            system_mode=system_mode,
        )
        cert, key = management_certificate(self.directory, address, cert, key)
        self.certificate = cert
        self._watcher: gevent.Greenlet | None = None
        self.listener = ManagementListener(self.app, address, port, tls_context(cert, key))

    @property
    def url(self) -> str:
        return self.listener.url

    def ensure_admin(self, password_file: Path | None = None) -> str | None:
        """A console reset first (it wins), then the first admin if there is no user."""
        apply_password_reset(self.users, self.directory)
        return initial_admin(self.users, self.directory, password_file)

    def start(self) -> bool:
        self._watcher = gevent.spawn(watch_password_reset, self.users, self.directory)
        return self.listener.start()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.kill()
        self.listener.stop()
        self.users.close()
        self.audit.close()
