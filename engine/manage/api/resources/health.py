"""/api/v1/health: is the management plane up and can it read the store (no login needed)."""

from __future__ import annotations

from flask import Response

from passerelle.engine.manage.api.bodies import reply
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.schemas import Health
from passerelle.engine.manage.api.spec import Resource

resource = Resource("health", "health")


@resource.route(
    "GET",
    "/api/v1/health",
    "For load balancers and HA peers; no authentication",
    response=Health,
    public=True,
)
def health() -> Response:
    return reply({"status": "ok", "config_version": context().store.latest_number()})
