"""API errors: every refusal is JSON ``{"error": ..., "field": ...}`` with a 4xx status."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from passerelle.engine.model.errors import ConfigError

log = logging.getLogger("passerelle.api")


class ApiError(Exception):
    """A request the API refuses; ``field`` names the part of the input at fault ('' if none)."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str = "",
        *,
        headers: dict[str, str] | None = None,
        problems: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.problems = problems

    @classmethod
    def from_config_error(cls, exc: ConfigError, status: int = 422) -> ApiError:
        problems = exc.as_dict()["problems"]
        return cls(status, exc.message, exc.field, problems=problems)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "field": self.field}
        if self.problems:
            body["problems"] = self.problems
        return body


def not_found(what: str, field: str = "") -> ApiError:
    return ApiError(404, f"no {what}", field)


def error_response(error: ApiError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    response = jsonify({"error": exc.description or exc.name, "field": ""})
    response.status_code = status
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _unexpected(exc: Exception) -> Response:
    log.exception("management API failure")
    response = jsonify({"error": "internal error; see the engine log", "field": ""})
    response.status_code = 500
    return response


def install(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(
        ConfigError, lambda exc: error_response(ApiError.from_config_error(exc))
    )
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
