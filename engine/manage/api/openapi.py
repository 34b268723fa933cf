"""The OpenAPI 3.1 document, built from the registered operations and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from passerelle.engine.manage.api.schemas import ErrorBody
from passerelle.engine.manage.api.spec import JSON, Operation, Resource

REF = "#/components/schemas/{model}"
INTEGER_PARAMETERS = frozenset({"number"})
REASONS = {
    400: "Malformed request",
    401: "Authentication required",
    403: "Refused (CSRF token or current password)",
    404: "No such resource",
    409: "Conflicts with the current configuration or state",
    412: "The configuration changed since the ETag in If-Match",
    415: "The body must be application/json",
    422: "Invalid: the field names what to fix",
    429: "Too many failed logins; see Retry-After",
}
SECURITY_SCHEMES = {
    "basic": {"type": "http", "scheme": "basic"},
    "token": {"type": "http", "scheme": "bearer", "description": "an API token from /tokens"},
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "passerelle_session",
        "description": "from POST /api/v1/session; unsafe methods also need X-CSRF-Token",
    },
}


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], str]]:
    wanted: dict[tuple[type[BaseModel], str], None] = {(ErrorBody, "serialization"): None}
    for op in operations:
        if op.body is not None:
            wanted[(op.body, "validation")] = None
        if op.response is not None:
            wanted[(op.response, op.response_mode)] = None
    return list(wanted)


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters = []
    for name in re.findall(r"\{(\w+)\}", op.path):
        kind = "integer" if name in INTEGER_PARAMETERS else "string"
        schema: dict[str, Any] = {"type": kind}
        if kind == "integer":
            schema["minimum"] = 0
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    for query in op.query:
        schema = {"type": query.type}
        if query.enum:
            schema["enum"] = list(query.enum)
        if query.minimum is not None:
            schema["minimum"] = query.minimum
        parameters.append(
            {"name": query.name, "in": "query", "description": query.description, "schema": schema}
        )
    if op.etag and op.method in ("put", "delete", "post"):
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "description": "the ETag (configuration version) the change was made from",
                "schema": {"type": "string"},
            }
        )
    return parameters


def _responses(op: Operation, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "OK"}
    if op.response is not None:
        schema = refs[(op.response, op.response_mode)]
        if op.many:
            schema = {"type": "array", "items": schema}
        success["content"] = {op.media: {"schema": schema}}
        for media in op.alternatives:
            success["content"][media] = {"schema": schema}
    elif op.media != JSON:
        success["content"] = {op.media: {"schema": {"type": "string"}}}
    if op.etag:
        success["headers"] = {"ETag": {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): success}
    error = {"content": {JSON: {"schema": refs[(ErrorBody, "serialization")]}}}
    codes = set(op.errors) | {400, 405, 413}
    if op.body is not None:
        codes |= {415, 422}
    if not op.public:
        codes |= {401, 403, 429}
    for code in sorted(codes):
        responses[str(code)] = {"description": REASONS.get(code, "Refused"), **error}
    return responses


def build(resources: tuple[Resource, ...], version: str) -> dict[str, Any]:
    operations = [op for resource in resources for op in resource.operations]
    refs, definitions = models_json_schema(_models(operations), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.view.replace(".", "_"),
            "tags": [op.tag],
            "parameters": _parameters(op),
            "responses": _responses(op, refs),
        }
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": refs[(op.body, "validation")]}},
            }
        if op.public:
            entry["security"] = []
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Passerelle management API",
            "version": version,
            "description": "Errors are JSON {error, field} with a 4xx status; a change is "
            "validated whole and stored atomically, or not at all.",
        },
        "servers": [{"url": "/"}],
        "security": [{"basic": []}, {"token": []}, {"session": []}],
        "tags": [{"name": r.tag} for r in resources],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
