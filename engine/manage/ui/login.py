"""Login, logout and the first-login steps (EULA, own password, licence choice)."""

from __future__ import annotations

from flask import Response, g, redirect, request, url_for

from passerelle.engine.manage.api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    client_address,
    too_many_failures,
)
from passerelle.engine.manage.api.bootstrap import ADMIN, forget_initial_password
from passerelle.engine.manage.api.changes import note
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.ui import facts, onboarding
from passerelle.engine.manage.ui.auth import safe_next
from passerelle.engine.manage.ui.pages import render
from passerelle.engine.manage.ui.web import page
from passerelle.engine.manage.users import MAX_PASSWORD, SESSION_MAX, UserError

COOKIE = {"secure": True, "samesite": "Strict", "path": "/"}


@page("/login", methods=("GET", "POST"))
def login() -> Response:
    target = safe_next(request.values.get("next")) or url_for("ui.dashboard")
    if request.method == "GET":
        if g.get("session") is not None:
            return redirect(target)
        return render("login.html", next=request.args.get("next", ""))
    name = request.form.get("username", "")[:64]
    password = request.form.get("password", "")[:MAX_PASSWORD]
    ctx = context()
    try:
        too_many_failures()  # the same per-address limit as the API's login
    except ApiError as exc:
        return render("login.html", exc.status, error=exc.message, username=name, next=target)
    user = ctx.users.verify_password(name, password)
    session = None
    if user is not None:
        try:
            session_id, session = ctx.users.create_session(user.name)
        except KeyError:
            user = None
    if user is None or session is None:
        ctx.limiter.failed(client_address())
        note(f"failed login as {name!r}")
        return render(
            "login.html", 401, error="wrong user name or password", username=name, next=target
        )
    ctx.limiter.succeeded(client_address())
    g.user = user.name
    note("log in (web UI)")
    response = redirect(target, 303)
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, **COOKIE)
    # Readable by scripts, which echo it in X-CSRF-Token to the API (as the API's login does).
    response.set_cookie(CSRF_COOKIE, session.csrf_token, max_age=int(SESSION_MAX), **COOKIE)
    return response


@page("/logout", methods=("POST",))
def logout() -> Response:
    session_id = g.get("session_id")
    if session_id:
        context().users.end_session(session_id)
    note("log out (web UI)")
    response = redirect(url_for("ui.login"), 303)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=True, samesite="Strict")
    return response


def _next_step() -> Response:
    ctx = context()
    step = onboarding.pending_step(ctx.directory, ctx.users, g.user)
    return redirect(url_for(step or "ui.dashboard"), 303)


@page("/welcome/eula", methods=("GET", "POST"))
def welcome_eula() -> Response:
    error = ""
    if request.method == "POST":
        if request.form.get("accept") == "yes":
            onboarding.record(context().directory, "eula", g.user, sha256=onboarding.eula_digest())
            note("accept the EULA")
            return _next_step()
        error = "tick the box to accept the licence agreement"
    return render(
        "welcome_eula.html", 422 if error else 200, eula=onboarding.eula_text(), error=error, step=1
    )


@page("/welcome/password", methods=("GET", "POST"))
def welcome_password() -> Response:
    if request.method == "GET":
        return render("welcome_password.html", errors={}, step=2)
    errors = change_own_password(
        request.form.get("current_password", ""),
        request.form.get("password", ""),
        request.form.get("confirm", ""),
    )
    if errors:
        return render("welcome_password.html", 422, errors=errors, step=2)
    return _next_step()


def change_own_password(current: str, password: str, confirm: str) -> dict[str, str]:
    """The API's own-password rules (current one required, others' sessions end); errors by
    field, empty when the password was changed."""
    users = context().users
    if password != confirm:
        return {"confirm": "the two new passwords differ"}
    if users.verify_password(g.user, current[:MAX_PASSWORD]) is None:
        return {"current_password": "the current password is wrong"}
    if password == current:
        return {"password": "choose a password other than the current one"}
    try:
        users.set_password(g.user, password)
    except UserError as exc:
        return {exc.field: str(exc)}
    users.end_sessions(g.user, keep=g.get("session_id"))
    if g.user == ADMIN:
        forget_initial_password(context().directory)
    note(f"change password of {g.user}")
    return {}


@page("/welcome/licence", methods=("GET", "POST"))
def welcome_licence() -> Response:
    directory = context().directory
    error = ""
    if request.method == "POST":
        choice = request.form.get("choice")
        if choice == "demo":
            onboarding.record(directory, "licence", g.user, choice="demo")
            note("start the demo licence")
            return _next_step()
        if choice == "activate":
            error = activate(request.form.get("licence", ""))
            if not error:
                onboarding.record(directory, "licence", g.user, choice="activate")
                return _next_step()
        else:
            error = "choose the demo or activate a licence"
    return render(
        "welcome_licence.html",
        422 if error else 200,
        licence=facts.licence(directory),
        error=error,
        step=3,
    )


def activate(text: str) -> str:
    """Activate a licence file's text; the error to show, '' when it worked."""
    if not text.strip():
        return "paste the licence file's text"
    module = facts.licence_module()
    function = getattr(module, "activate", None) if module else None
    if function is None:
        return "licence activation is not available in this build"
    try:
        function(context().directory, text)
    except (ValueError, OSError) as exc:
        return str(exc)
    note("activate a licence")
    return ""
