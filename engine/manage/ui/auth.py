"""Who is using the UI: the API's session cookie, checked before every page.

Pages are public to the API's authentication (which would answer 401 JSON) and checked here
instead: no session sends the browser to the login page, and an unsafe request must carry the
session's CSRF token, as a form field or in the same X-CSRF-Token header the API wants.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Response, g, redirect, request, url_for

from passerelle.engine.manage.api.auth import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.ui import onboarding

OPEN = frozenset({"ui.login", "ui.asset"})
WELCOME = frozenset({"ui.welcome_eula", "ui.welcome_password", "ui.welcome_licence", "ui.logout"})
CSRF_FIELD = "csrf_token"


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: a login link must not send the user elsewhere afterwards."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def check_session() -> Response | None:
    ctx = context()
    cookie = request.cookies.get(SESSION_COOKIE)
    session = ctx.users.session(cookie) if cookie else None
    if session is not None:
        g.user, g.auth_method, g.session_id, g.session = session.user, "session", cookie, session
    if request.endpoint in OPEN:
        return None
    if session is None:
        if request.method in SAFE_METHODS:
            wanted = request.full_path.rstrip("?")
            return redirect(url_for("ui.login", next=wanted if wanted != "/" else None))
        raise ApiError(401, "the session has expired; log in again", "Authorization")
    if request.method not in SAFE_METHODS:
        sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise ApiError(403, "missing or wrong CSRF token", CSRF_FIELD)
    step = onboarding.pending_step(ctx.directory, ctx.users, session.user)
    if step is not None and request.endpoint not in WELCOME:
        return redirect(url_for(step))
    return None
