"""Who is calling: HTTP Basic or a bearer API token for scripts, a session cookie for the UI.

A browser sends cookies on its own, so a request authenticated by the session cookie must
also prove it was made by our page: unsafe methods need the session's CSRF token in the
X-CSRF-Token header. Basic and bearer credentials are never sent implicitly by a browser to a
cross-site request in a way a page can use, so they need no such token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import urlsplit

from flask import current_app, g, request

from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError

SESSION_COOKIE = "passerelle_session"
CSRF_COOKIE = "passerelle_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_address() -> str:
    return request.remote_addr or ""


def too_many_failures() -> None:
    wait = context().limiter.retry_after(client_address())
    if wait is not None:
        raise ApiError(
            429,
            f"too many failed logins from this address; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )


def _challenge() -> dict[str, str]:
    # A Basic challenge makes browsers pop up their own login box; the web UI asks for JSON.
    if SESSION_COOKIE in request.cookies or request.headers.get("X-Requested-With"):
        return {"WWW-Authenticate": 'Bearer realm="passerelle"'}
    return {"WWW-Authenticate": 'Basic realm="passerelle", Bearer realm="passerelle"'}


def _refuse(message: str) -> ApiError:
    return ApiError(401, message, "Authorization", headers=_challenge())


def _basic(credentials: str) -> str:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _refuse("malformed Basic credentials") from None
    name, sep, password = decoded.partition(":")
    if not sep:
        raise _refuse("malformed Basic credentials")
    too_many_failures()
    user = context().users.verify_password(name, password)
    if user is None:
        context().limiter.failed(client_address())
        raise _refuse("wrong user name or password")
    context().limiter.succeeded(client_address())
    return user.name


def _bearer(secret: str) -> str:
    too_many_failures()
    token = context().users.authenticate_token(secret.strip())
    if token is None:
        context().limiter.failed(client_address())
        raise _refuse("unknown or revoked API token")
    return token.user


def _from_header(header: str) -> None:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic":
        g.user, g.auth_method = _basic(credentials.strip()), "basic"
    elif scheme.lower() == "bearer":
        g.user, g.auth_method = _bearer(credentials), "token"
    else:
        raise _refuse("use Basic or Bearer authorization")


def _from_session(cookie: str) -> None:
    session = context().users.session(cookie)
    if session is None:
        raise _refuse("the session has expired; log in again")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise ApiError(403, "missing or wrong CSRF token", CSRF_HEADER)
    g.user, g.auth_method = session.user, "session"
    g.session_id, g.session = cookie, session


def _same_origin() -> None:
    # A browser that once answered a Basic prompt re-sends those credentials by itself, even
    # with a form posted from another site; browsers name that site in Origin/Sec-Fetch-Site.
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    cross = request.headers.get("Sec-Fetch-Site") == "cross-site"
    if cross or (origin and urlsplit(origin).netloc != request.host):
        raise ApiError(403, "cross-site requests are refused", "Origin")


def authenticate() -> None:
    """Before every request: set g.user, or refuse unless the operation is public."""
    _same_origin()
    view = current_app.view_functions.get(request.endpoint or "")
    header = request.headers.get("Authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if getattr(view, "public", False):
        return
    if header:
        _from_header(header)
    elif cookie:
        _from_session(cookie)
    else:
        raise _refuse("authentication required")
