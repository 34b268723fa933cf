"""Live figures from the engine: JSON statistics, engine status and Prometheus metrics."""

from __future__ import annotations

from flask import Response

from passerelle.engine.manage.api.bodies import reply
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.schemas import EngineStatus, Statistics
from passerelle.engine.manage.api.spec import Resource

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"

resource = Resource("statistics", "statistics")


@resource.route(
    "GET",
    "/api/v1/statistics",
    "Counters and health per virtual service, SubVS, real server",
    response=Statistics,
)
def statistics() -> Response:
    provider = context().stats
    response = reply({"virtual_services": provider() if provider else []})
    response.headers["Cache-Control"] = "no-store"
    return response


@resource.route(
    "GET",
    "/api/v1/status",
    "The engine's running version, uptime and workers",
    response=EngineStatus,
)
def status() -> Response:
    provider = context().status
    return reply({"status": provider() if provider else {}})


@resource.route(
    "GET", "/metrics", "Prometheus metrics (text exposition format)", media="text/plain"
)
def metrics() -> Response:
    provider = context().metrics
    body = provider() if provider else "# no engine attached\n"
    return Response(body, content_type=PROMETHEUS, headers={"Cache-Control": "no-store"})
