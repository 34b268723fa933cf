"""/api/v1/compliance and /api/v1/virtual-services/{name}/compliance: the Skype for Business
advisor's findings (which of Microsoft's requirements a virtual service meets or breaks)."""

from __future__ import annotations

from flask import Response

from passerelle.engine.manage import advisor
from passerelle.engine.manage.api.bodies import reply
from passerelle.engine.manage.api.changes import current
from passerelle.engine.manage.api.errors import not_found
from passerelle.engine.manage.api.schemas import Body
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.model.config import Config

resource = Resource("compliance", "compliance")


class FindingOut(Body):
    requirement: str
    status: str
    detail: str
    field: str | None


class ComplianceReport(Body):
    virtual_service: str
    carries_skype: bool
    role: str  # "reverse-proxy" or "internal-pool"
    met: int
    broken: int
    findings: list[FindingOut]


def report(config: Config, name: str, carries: bool) -> dict[str, object]:
    findings = advisor.assess(config, name)
    vs = config.service(name)
    return ComplianceReport(
        virtual_service=name,
        carries_skype=carries,
        role="reverse-proxy" if advisor.is_reverse_proxy(vs) else "internal-pool",
        met=sum(f.status == advisor.MET for f in findings),
        broken=sum(f.status == advisor.BROKEN for f in findings),
        findings=[
            FindingOut(requirement=f.requirement, status=f.status, detail=f.detail, field=f.field)
            for f in findings
        ],
    ).model_dump(mode="json")


@resource.route(
    "GET",
    "/api/v1/compliance",
    "Skype for Business compliance of every virtual service that carries it",
    response=ComplianceReport,
    many=True,
    etag=True,
)
def all_compliance() -> Response:
    number, config = current()
    names = advisor.skype_services(config)
    return reply([report(config, name, True) for name in names], etag=number)


@resource.route(
    "GET",
    "/api/v1/virtual-services/{name}/compliance",
    "Skype for Business compliance of one virtual service",
    response=ComplianceReport,
    errors=(404,),
    etag=True,
)
def service_compliance(name: str) -> Response:
    number, config = current()
    try:
        config.service(name)
    except KeyError:
        raise not_found(f"virtual service named {name!r}") from None
    carries = name in advisor.skype_services(config)
    return reply(report(config, name, carries), etag=number)
