"""Reading request bodies and query parameters, and writing times, the same way everywhere."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, TypeVar

from flask import Response, jsonify, request
from pydantic import BaseModel, ValidationError

from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.model.errors import from_validation_error

M = TypeVar("M", bound=BaseModel)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_body() -> Any:
    """The request body parsed as strict JSON (no NaN/Infinity); 400 if it is not."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "a JSON request body is required")
    # Only JSON: an HTML form from another site cannot send it without the browser asking first.
    media = request.mimetype
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, "send the body as application/json", "Content-Type")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None


def json_object() -> dict[str, Any]:
    data = json_body()
    if not isinstance(data, dict):
        raise ApiError(422, "the request body must be a JSON object")
    return data


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``; 422 naming the field (relative to the body) if invalid."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError.from_config_error(from_validation_error(exc)) from None


def body(model: type[M]) -> M:
    return parse(model, json_object())


def int_query(name: str, default: int, minimum: int = 0, maximum: int = 10_000) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, "must be an integer", name) from None
    if not minimum <= value <= maximum:
        raise ApiError(400, f"must be between {minimum} and {maximum}", name)
    return value


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def reply(payload: Any, status: int = 200, etag: int | None = None) -> Response:
    response = jsonify(payload)
    response.status_code = status
    if etag is not None:
        response.headers["ETag"] = f'"{etag}"'
    return response


def empty(etag: int | None = None) -> Response:
    response = Response(status=204)
    if etag is not None:
        response.headers["ETag"] = f'"{etag}"'
    return response
