"""Certificates: list with expiry warnings, PEM and PFX upload, CSR, self-signed."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, request
from pydantic import ValidationError

from passerelle.engine.manage.api.changes import current
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.api.resources import certificates as api
from passerelle.engine.manage.ui import pki
from passerelle.engine.manage.ui.pages import done, render
from passerelle.engine.manage.ui.web import page
from passerelle.engine.manage.ui.writes import Outcome, call, change
from passerelle.engine.model.config import Certificate
from passerelle.engine.model.errors import from_validation_error
from passerelle.engine.tls.certificates import CertificateError, inspect, make_self_signed

WARN_DAYS = 30


@page("/certificates")
def certificates(
    form: str = "", errors: dict[str, str] | None = None, status: int = 200, csr: str = ""
) -> Response:
    _, config = current()
    rows = [api.describe(c, config) for c in config.certificates]
    return render(
        "certificates.html",
        status,
        rows=rows,
        warn_days=WARN_DAYS,
        form=form,
        errors=errors or {},
        typed=request.form if form else {},
        pending=pki.pending(context().directory),
        csr=csr,
        key_types=pki.KEY_TYPES,
    )


def _store(form: str, cert: dict[str, Any], action: str) -> Response:
    """Check the certificate like the API's upload does, then add it through the change path."""
    try:
        model = Certificate.model_validate(cert)
        inspect(model, require_key=True)
    except ValidationError as exc:
        error = from_validation_error(exc)
        return certificates(form, {error.field.split("[")[0]: error.message}, 422)
    except CertificateError as exc:
        return certificates(form, {exc.field: str(exc)}, 422)

    def add(config: dict[str, Any]) -> None:
        if any(c["name"] == model.name for c in config["certificates"]):
            raise ApiError(409, f"a certificate named {model.name!r} exists", "name")
        config["certificates"].append(model.model_dump(mode="json"))

    outcome = change(f"{action} {model.name}", add)
    if not outcome.ok:
        return _refused(form, outcome)
    return done("ui.certificates", f"certificate {model.name} stored")


def _refused(form: str, outcome: Outcome) -> Response:
    where, _ = outcome.problems[0] if outcome.problems else ("", "")
    return certificates(form, {where or "": outcome.message}, outcome.status)


def _text(name: str) -> str:
    upload = request.files.get(f"{name}_file")
    if upload is not None and upload.filename:
        return upload.read(1024 * 1024).decode("utf-8", "replace")
    return request.form.get(name, "")


@page("/certificates/pem", methods=("POST",))
def upload_pem() -> Response:
    cert = {
        "name": request.form.get("name", "").strip(),
        "cert_pem": _text("cert_pem"),
        "key_pem": _text("key_pem"),
        "chain_pem": _text("chain_pem"),
    }
    return _store("pem", cert, "upload certificate")


@page("/certificates/pfx", methods=("POST",))
def upload_pfx() -> Response:
    upload = request.files.get("pfx")
    data = upload.read(1024 * 1024) if upload is not None else b""
    try:
        parts = pki.from_pkcs12(data, request.form.get("password", ""))
    except pki.BundleError as exc:
        return certificates("pfx", {exc.field: str(exc)}, 422)
    cert = {"name": request.form.get("name", "").strip(), **parts.__dict__}
    return _store("pfx", cert, "upload certificate (PKCS#12)")


@page("/certificates/self-signed", methods=("POST",))
def self_signed() -> Response:
    common_name = request.form.get("common_name", "").strip()
    if not common_name:
        return certificates("self", {"common_name": "is required"}, 422)
    names = [n for n in request.form.get("names", "").replace(",", " ").split() if n]
    try:
        cert_pem, key_pem = make_self_signed(common_name, [common_name, *names])
    except ValueError as exc:
        return certificates("self", {"names": str(exc)}, 422)
    cert = {"name": request.form.get("name", "").strip(), "cert_pem": cert_pem, "key_pem": key_pem}
    return _store("self", cert, "create self-signed certificate")


@page("/certificates/csr", methods=("POST",))
def create_csr() -> Response:
    names = [n for n in request.form.get("names", "").replace(",", " ").split() if n]
    try:
        csr = pki.create_csr(
            context().directory,
            request.form.get("name", "").strip(),
            request.form.get("common_name", ""),
            names,
            request.form.get("key_type", "rsa-2048"),
        )
    except pki.BundleError as exc:
        return certificates("csr", {exc.field: str(exc)}, 422)
    return certificates(csr=csr)


@page("/certificates/csr/<name>.csr")
def download_csr(name: str) -> Response:
    for item in pki.pending(context().directory):
        if item.name == name:
            response = Response(item.csr_pem, mimetype="application/pkcs10")
            response.headers["Content-Disposition"] = f'attachment; filename="{name}.csr"'
            return response
    abort(404)


@page("/certificates/csr/<name>/complete", methods=("POST",))
def complete_csr(name: str) -> Response:
    directory = context().directory
    try:
        key_pem = pki.kept_key(directory, name)
    except pki.BundleError as exc:
        return certificates(f"complete:{name}", {exc.field: str(exc)}, 404)
    cert = {
        "name": name,
        "cert_pem": _text("cert_pem"),
        "key_pem": key_pem,
        "chain_pem": _text("chain_pem"),
    }
    response = _store(f"complete:{name}", cert, "install signed certificate")
    if response.status_code == 303:
        pki.forget(directory, name)
    return response


@page("/certificates/csr/<name>/discard", methods=("POST",))
def discard_csr(name: str) -> Response:
    pki.forget(context().directory, name)
    return done("ui.certificates", f"request {name} discarded")


@page("/certificates/<name>/delete", methods=("POST",))
def delete_certificate(name: str) -> Response:
    outcome = call(api.delete_certificate, name)
    if not outcome.ok:
        return certificates("list", {"": outcome.message}, outcome.status)
    return done("ui.certificates", f"certificate {name} deleted")
