"""/api/v1/certificates: what is installed (names, expiry, key type) and uploads of PEM.

Private keys go in and never come out of this resource: answers carry the certificate and its
chain only. A certificate that a virtual service names cannot be deleted; the refusal names the
field that uses it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response

from passerelle.engine.manage.api.bodies import empty, json_object, parse, reply
from passerelle.engine.manage.api.changes import Edited, current, edit
from passerelle.engine.manage.api.errors import ApiError, not_found
from passerelle.engine.manage.api.schemas import CertificateDetail, CertificateInfo
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.model.config import Certificate, Config
from passerelle.engine.tls.certificates import CertificateError, inspect

MANY = "/api/v1/certificates"
ONE = MANY + "/{cert}"

resource = Resource("certificates", "certificates")


def references(config: Config, name: str) -> list[str]:
    """Fields of ``config`` that name certificate ``name``."""
    found: list[str] = []
    for i, vs in enumerate(config.virtual_services):
        where = f"virtual_services[{i}]"
        for j, used in enumerate(vs.tls.certificates if vs.tls else []):
            if used == name:
                found.append(f"{where}.tls.certificates[{j}]")
        if vs.reencrypt and vs.reencrypt.ca_certificate == name:
            found.append(f"{where}.reencrypt.ca_certificate")
        for j, pool in enumerate(vs.subvs):
            if pool.reencrypt and pool.reencrypt.ca_certificate == name:
                found.append(f"{where}.subvs[{j}].reencrypt.ca_certificate")
    return found


def describe(cert: Certificate, config: Config, detail: bool = False) -> dict[str, Any]:
    info = inspect(cert, require_key=False)
    left = info.not_after - dt.datetime.now(dt.UTC)
    summary = CertificateInfo(
        name=cert.name,
        subject_cn=info.subject_cn,
        dns_names=list(info.dns_names),
        not_before=info.not_before.isoformat(),
        not_after=info.not_after.isoformat(),
        days_left=left.days,
        expired=info.expired(),
        key_type=info.key_type,
        fingerprint_sha256=info.fingerprint_sha256,
        self_signed=info.self_signed,
        has_key=bool(cert.key_pem.strip()),
        used_by=references(config, cert.name),
    )
    if not detail:
        return summary.model_dump(mode="json")
    full = CertificateDetail(
        **summary.model_dump(), cert_pem=cert.cert_pem, chain_pem=cert.chain_pem
    )
    return full.model_dump(mode="json")


def _find(config: Config, name: str) -> Certificate:
    for cert in config.certificates:
        if cert.name == name:
            return cert
    raise not_found(f"certificate named {name!r}")


def _upload() -> Certificate:
    cert = parse(Certificate, json_object())
    try:
        inspect(cert, require_key=False)  # early, so the field is named relative to the body
    except CertificateError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    return cert


def _stored(edited: Edited, name: str, status: int) -> Response:
    cert = _find(edited.config, name)
    response = reply(describe(cert, edited.config, detail=True), status, etag=edited.version)
    if status == 201:
        response.headers["Location"] = f"{MANY}/{name}"
    return response


@resource.route("GET", MANY, "List certificates", response=CertificateInfo, many=True, etag=True)
def list_certificates() -> Response:
    number, config = current()
    return reply([describe(c, config) for c in config.certificates], etag=number)


@resource.route(
    "POST",
    MANY,
    "Upload a certificate (PEM: certificate, private key, chain)",
    body=Certificate,
    response=CertificateDetail,
    status=201,
    errors=(409, 412, 422),
    etag=True,
)
def upload_certificate() -> Response:
    cert = _upload()

    def add(config: dict[str, Any]) -> None:
        if any(c["name"] == cert.name for c in config["certificates"]):
            raise ApiError(409, f"a certificate named {cert.name!r} exists", "name")
        config["certificates"].append(cert.model_dump(mode="json"))

    edited, _ = edit(f"upload certificate {cert.name}", add)
    return _stored(edited, cert.name, 201)


@resource.route(
    "GET",
    ONE,
    "Read a certificate (never its private key)",
    response=CertificateDetail,
    errors=(404,),
    etag=True,
)
def get_certificate(cert: str) -> Response:
    number, config = current()
    return reply(describe(_find(config, cert), config, detail=True), etag=number)


@resource.route(
    "PUT",
    ONE,
    "Replace a certificate (renewal); services using it switch at once",
    body=Certificate,
    response=CertificateDetail,
    errors=(404, 412, 422),
    etag=True,
)
def replace_certificate(cert: str) -> Response:
    new = _upload()
    if new.name != cert:
        raise ApiError(422, f"must be {cert!r}, the name in the path", "name")

    def replace(config: dict[str, Any]) -> None:
        for i, existing in enumerate(config["certificates"]):
            if existing["name"] == cert:
                config["certificates"][i] = new.model_dump(mode="json")
                return
        raise not_found(f"certificate named {cert!r}")

    edited, _ = edit(f"replace certificate {cert}", replace)
    return _stored(edited, cert, 200)


@resource.route(
    "DELETE",
    ONE,
    "Delete a certificate that nothing uses",
    status=204,
    errors=(404, 409, 412),
    etag=True,
)
def delete_certificate(cert: str) -> Response:
    def remove(config: dict[str, Any]) -> None:
        names = [c["name"] for c in config["certificates"]]
        if cert not in names:
            raise not_found(f"certificate named {cert!r}")
        used = references(Config.model_validate(config), cert)
        if used:
            raise ApiError(409, f"certificate {cert!r} is in use by {', '.join(used)}", used[0])
        del config["certificates"][names.index(cert)]

    edited, _ = edit(f"delete certificate {cert}", remove)
    return empty(etag=edited.version)
