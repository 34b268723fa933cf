"""/api/v1/openapi.json: the OpenAPI document of this API (no authentication)."""

from __future__ import annotations

import functools
from typing import Any

from flask import Response

from passerelle import __version__
from passerelle.engine.manage.api import openapi
from passerelle.engine.manage.api.bodies import reply
from passerelle.engine.manage.api.spec import Resource

resource = Resource("documentation", "documentation")


@functools.cache
def document() -> dict[str, Any]:
    from passerelle.engine.manage.api.resources import RESOURCES  # it lists this module too

    return openapi.build(RESOURCES, __version__)


@resource.route("GET", "/api/v1/openapi.json", "This document (OpenAPI 3.1)", public=True)
def openapi_document() -> Response:
    return reply(document())
