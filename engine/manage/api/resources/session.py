"""/api/v1/session: the web UI's login and logout (a session cookie plus a CSRF token)."""

from __future__ import annotations

from flask import Response, g

from passerelle.engine.manage.api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    client_address,
    too_many_failures,
)
from passerelle.engine.manage.api.bodies import body, empty, iso, reply
from passerelle.engine.manage.api.changes import note
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.api.schemas import Login, SessionInfo
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.manage.users import SESSION_MAX

PATH = "/api/v1/session"

resource = Resource("session", "session")


@resource.route(
    "POST",
    PATH,
    "Log in: sets the session cookie; answers the CSRF token",
    body=Login,
    response=SessionInfo,
    status=201,
    errors=(401, 422, 429),
    public=True,
)
def login() -> Response:
    too_many_failures()
    credentials = body(Login)
    ctx = context()
    user = ctx.users.verify_password(credentials.username, credentials.password)
    session = None
    if user is not None:
        try:
            session_id, session = ctx.users.create_session(user.name)
        except KeyError:  # deleted between the password check and now
            user = None
    if user is None or session is None:
        ctx.limiter.failed(client_address())
        note(f"failed login as {credentials.username[:64]!r}")
        raise ApiError(401, "wrong user name or password", "password")
    ctx.limiter.succeeded(client_address())
    g.user = user.name
    note("log in")
    response = reply(
        SessionInfo(
            user=user.name,
            method="session",
            csrf_token=session.csrf_token,
            expires=iso(session.expires),
        ).model_dump(mode="json"),
        201,
    )
    # The session dies with the browser or the server-side limits, whichever comes first.
    common = {"secure": True, "samesite": "Strict", "path": "/"}
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, **common)
    # Readable by the page's script, which echoes it in X-CSRF-Token (double submit).
    response.set_cookie(CSRF_COOKIE, session.csrf_token, max_age=int(SESSION_MAX), **common)
    return response


@resource.route("GET", PATH, "Who am I, and how did I authenticate", response=SessionInfo)
def whoami() -> Response:
    session = g.get("session")
    info = SessionInfo(
        user=g.user,
        method=g.auth_method,
        csrf_token=session.csrf_token if session else None,
        expires=iso(session.expires) if session else None,
    )
    return reply(info.model_dump(mode="json"))


@resource.route("DELETE", PATH, "Log out: ends this session", status=204)
def logout() -> Response:
    session_id = g.get("session_id")
    if session_id:
        context().users.end_session(session_id)
    note("log out")
    response = empty()
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=True, samesite="Strict")
    return response
