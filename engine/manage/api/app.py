"""The management API as a WSGI application (Flask), built around the stores it manages."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from flask import Flask, Response, g, request

from passerelle.engine.manage.api import errors
from passerelle.engine.manage.api.auth import authenticate, client_address
from passerelle.engine.manage.api.context import (
    EXTENSION,
    ApiContext,
    MetricsProvider,
    StatsProvider,
    StatusProvider,
)
from passerelle.engine.manage.api.ratelimit import FailureLimiter
from passerelle.engine.manage.api.resources import RESOURCES
from passerelle.engine.manage.api.resources import system as system_settings
from passerelle.engine.manage.audit import AuditLog
from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.manage.ui import blueprint as web_ui
from passerelle.engine.manage.users import UserStore

MAX_BODY = 16 * 1024 * 1024  # a whole configuration with many certificates fits easily


def _finish(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    action = g.get("audit_action")
    if action:
        ctx: ApiContext = g.api
        ctx.audit.record(
            user=g.get("user", ""),
            address=client_address(),
            method=request.method,
            path=request.path[:512],
            action=action,
            status=response.status_code,
            version=g.get("audit_version"),
        )
    return response


def create_app(
    store: ConfigStore,
    users: UserStore,
    audit: AuditLog,
    *,
    stats: StatsProvider | None = None,
    metrics: MetricsProvider | None = None,
    status: StatusProvider | None = None,
    reserved: Iterable[tuple[str, int]] = (),
    limiter: FailureLimiter | None = None,
    directory: Path | None = None,
    system_root: Path | None = None,
    system_mode: str | None = None,
) -> Flask:
    """The API over ``store`` (configuration), ``users`` and ``audit``.

    ``stats``/``metrics``/``status`` give the running engine's figures (absent: empty answers);
    ``reserved`` lists address:port pairs that no virtual service may take; ``directory`` is
    where the appliance's state files live (the store's folder when it is None).
    ``system_root``/``system_mode`` say where /api/v1/system reads and writes the operating
    system's files and whether it runs the commands ("live", only for "/") or records them;
    without a root, /api/v1/system works only when ``directory`` is /var/lib/passerelle.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    context = ApiContext(
        store=store,
        users=users,
        audit=audit,
        stats=stats,
        metrics=metrics,
        status=status,
        reserved=tuple(reserved),
        limiter=limiter or FailureLimiter(),
        directory=directory or store.path.parent,
    )
    app.extensions[EXTENSION] = context
    system_settings.install(
        app, system_settings.appliance_for(system_root, system_mode, context.directory)
    )
    errors.install(app)
    for resource in RESOURCES:
        app.register_blueprint(resource.blueprint)
    app.register_blueprint(web_ui)

    @app.before_request
    def _start() -> None:
        g.api = context
        authenticate()

    app.after_request(_finish)
    return app
