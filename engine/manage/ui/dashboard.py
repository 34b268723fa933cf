"""The dashboard: live connections, requests per second, health, licence and HA at a glance."""

from __future__ import annotations

from flask import Response, redirect, url_for

from passerelle.engine.manage.api.changes import current
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.ui import facts
from passerelle.engine.manage.ui.pages import render
from passerelle.engine.manage.ui.web import ha_state_file, page, ui_state

REFRESH_SECONDS = 3


@page("/")
def home() -> Response:
    return redirect(url_for("ui.dashboard"))


def _figures() -> dict[str, object]:
    ctx = context()
    live = facts.statistics(ctx)
    version, config = current()
    health = facts.Health()
    for row in live.values():
        health.up += row.health.up
        health.down += row.health.down
        health.unknown += row.health.unknown
    rate = ui_state().requests_per_second(sum(row.requests for row in live.values()))
    return {
        "engine": ctx.stats is not None,
        "connections": sum(row.active for row in live.values()),
        "rate": rate,
        "health": health,
        "services": [(vs.name, vs.enabled, live.get(vs.name)) for vs in config.virtual_services],
        "licence": facts.licence(ctx.directory),
        "ha": facts.ha_state(ha_state_file()),
        "version": version,
    }


@page("/dashboard")
def dashboard() -> Response:
    return render("dashboard.html", refresh=REFRESH_SECONDS, **_figures())


@page("/dashboard/live")
def dashboard_live() -> Response:
    """The figures alone, for the page's script to swap in every few seconds."""
    return render("dashboard_figures.html", **_figures())
