"""The API's resources, one module each; ``RESOURCES`` is the order they appear in the docs."""

from __future__ import annotations

from passerelle.engine.manage.api.resources import (
    advisor,
    audit,
    certificates,
    config,
    documentation,
    ha,
    health,
    licence,
    real_servers,
    session,
    statistics,
    subvs,
    system,
    templates,
    tokens,
    users,
    virtual_services,
)
from passerelle.engine.manage.api.spec import Resource

RESOURCES: tuple[Resource, ...] = (
    health.resource,
    session.resource,
    virtual_services.resource,
    real_servers.resource,
    subvs.resource,
    certificates.resource,
    templates.resource,
    advisor.resource,
    config.resource,
    statistics.resource,
    licence.resource,
    users.resource,
    tokens.resource,
    ha.resource,
    system.resource,
    audit.resource,
    documentation.resource,
)
