"""The management plane of one engine: users, audit, the API app and its HTTPS listener.

The API application (Flask, Werkzeug, Jinja, the resources, their schemas and the web UI: ~13 MB
resident in the engine's supervisor) is built when the listener gets its first request, not at
start: an appliance whose API nobody calls does not carry it. That request pays the one-off
import (a few hundred milliseconds); the application then lives as long as the plane.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from argon2 import PasswordHasher

from passerelle.engine.manage.api.bootstrap import (
    apply_password_reset,
    initial_admin,
    watch_password_reset,
)
from passerelle.engine.manage.api.listener import (
    ManagementListener,
    management_certificate,
    tls_context,
)
from passerelle.engine.manage.api.ratelimit import FailureLimiter
from passerelle.engine.manage.audit import AuditLog
from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.manage.users import UserStore

if TYPE_CHECKING:
    from flask import Flask

    from passerelle.engine.manage.api.context import (
        MetricsProvider,
        StatsProvider,
        StatusProvider,
    )

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
        self._build_app = partial(
            _create_app,
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
        self._app: Flask | None = None
        self._extensions: dict[str, object] = {}
        cert, key = management_certificate(self.directory, address, cert, key)
        self.certificate = cert
        self._watcher: gevent.Greenlet | None = None
        self.listener = ManagementListener(self._serve, address, port, tls_context(cert, key))

    @property
    def app(self) -> Flask:
        """The API application, built on first use (see the module's docstring)."""
        if self._app is None:
            app = self._build_app()
            app.extensions.update(self._extensions)
            self._app = app
        return self._app

    def add_extension(self, name: str, value: object) -> None:
        """``value`` as the application's ``extensions[name]``, now or once it is built."""
        self._extensions[name] = value
        if self._app is not None:
            self._app.extensions[name] = value

    def _serve(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        return self.app(environ, start_response)

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


def _create_app(*args: Any, **kwargs: Any) -> Flask:
    from passerelle.engine.manage.api.app import create_app

    return create_app(*args, **kwargs)
