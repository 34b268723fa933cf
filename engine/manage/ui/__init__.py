"""The web UI: server-rendered pages over the same stores and change path as the REST API."""

from __future__ import annotations

from passerelle.engine.manage.ui.blueprint import blueprint

__all__ = ["blueprint"]
