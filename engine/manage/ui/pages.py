"""Rendering a page with what every page needs: the user, the CSRF token, the navigation."""

from __future__ import annotations

from typing import Any

from flask import Response, g, make_response, redirect, render_template, request, url_for

NAVIGATION = (
    ("ui.dashboard", "Dashboard"),
    ("ui.services", "Virtual services"),
    ("ui.certificates", "Certificates"),
    ("ui.templates", "Templates"),
    ("ui.system", "System"),
)


def render(template: str, status: int = 200, **values: Any) -> Response:
    session = g.get("session")
    response = make_response(
        render_template(
            f"ui/{template}",
            user=g.get("user"),
            csrf_token=session.csrf_token if session else "",
            navigation=NAVIGATION,
            endpoint=request.endpoint,
            notice=request.args.get("done", "")[:200],
            **values,
        ),
        status,
    )
    return response


def done(endpoint: str, message: str, anchor: str = "", **values: Any) -> Response:
    """After a change: back to a page (GET), saying what happened."""
    target = url_for(endpoint, done=message, **values)
    return redirect(target + (f"#{anchor}" if anchor else ""), 303)
