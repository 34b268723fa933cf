"""The web UI's blueprint: pages at /, checked by session, answered as HTML even when refused."""

from __future__ import annotations

from pathlib import Path

from flask import Response, abort, send_file
from werkzeug.exceptions import HTTPException

from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.ui import (  # noqa: F401  (each module registers its pages)
    certificates,
    dashboard,
    login,
    services,
    system,
    templates_page,
)
from passerelle.engine.manage.ui.auth import check_session
from passerelle.engine.manage.ui.pages import render
from passerelle.engine.manage.ui.web import blueprint, page

ASSETS = Path(__file__).with_name("static")
ASSET_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
# Scripts and styles from this site only: no inline code, so injected markup cannot run.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@page("/ui/<asset>")
def asset(asset: str) -> Response:
    path = ASSETS / asset
    if path.suffix not in ASSET_TYPES or path.parent != ASSETS or not path.is_file():
        abort(404)
    response = send_file(path, mimetype=ASSET_TYPES[path.suffix], max_age=300)
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@blueprint.before_request
def _session() -> Response | None:
    return check_session()


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = POLICY
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _refusal(status: int, message: str) -> Response:
    return render("error.html", status, code=status, message=message)


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    response = _refusal(exc.status, exc.message)
    response.headers.update(exc.headers)
    return response


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _refusal(exc.code or 500, exc.description or exc.name)


__all__ = ["blueprint"]
