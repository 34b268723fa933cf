"""/api/v1/audit: who changed what, when, from which address; newest first."""

from __future__ import annotations

from flask import Response, request

from passerelle.engine.manage.api.bodies import int_query, iso, reply
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.schemas import AuditRecord
from passerelle.engine.manage.api.spec import Query, Resource

resource = Resource("audit", "audit")


@resource.route(
    "GET",
    "/api/v1/audit",
    "The audit log, newest first",
    response=AuditRecord,
    many=True,
    query=(
        Query("limit", "at most this many entries (default 100)", "integer", minimum=1),
        Query("before", "entries older than this id (paging)", "integer", minimum=1),
    ),
)
def audit_log() -> Response:
    limit = int_query("limit", 100, minimum=1, maximum=1000)
    before = int_query("before", 0, minimum=1, maximum=2**62) if "before" in request.args else None
    entries = context().audit.entries(limit, before)
    return reply(
        [
            AuditRecord(
                id=e.id,
                time=iso(e.time),
                user=e.user,
                address=e.address,
                method=e.method,
                path=e.path,
                action=e.action,
                status=e.status,
                version=e.version,
            ).model_dump(mode="json")
            for e in entries
        ]
    )
