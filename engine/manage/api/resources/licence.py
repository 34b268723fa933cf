"""/api/v1/licence: the licence state (demo days left, what expiry does) and activation."""

from __future__ import annotations

from flask import Response, request
from pydantic import ConfigDict, Field

from passerelle.engine.manage import licence
from passerelle.engine.manage.api.bodies import json_object, parse, reply
from passerelle.engine.manage.api.changes import note
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.api.schemas import Body
from passerelle.engine.manage.api.spec import Resource

resource = Resource("licence", "licence")


class LicenceOut(Body):
    kind: str = Field(description="demo, activated, expired or none")
    serial: str
    expires: str | None
    days_left: int | None
    features: list[str]
    expiry_effect: str = Field(description="what happens when the licence expires")
    started: str | None
    customer: str
    note: str
    accepts_new_connections: bool


class LicencePayload(Body):
    # a newer vendor tool may sign more fields; the signature covers whatever is there
    model_config = ConfigDict(extra="allow")

    serial: str
    customer: str = ""
    features: list[str]
    issued: str
    expires: str


class LicenceFile(Body):
    payload: LicencePayload
    signature: str


def _state(state: licence.LicenceState) -> dict[str, object]:
    return LicenceOut.model_validate(state.to_json()).model_dump(mode="json")


@resource.route(
    "GET", "/api/v1/licence", "The licence: kind, days left, what expiry does", response=LicenceOut
)
def licence_status() -> Response:
    return reply(_state(licence.licence_status(context().directory)))


@resource.route(
    "POST",
    "/api/v1/licence/activate",
    "Activate a licence file (the JSON the vendor issued, sent as is)",
    body=LicenceFile,
    response=LicenceOut,
    errors=(422,),
)
def activate_licence() -> Response:
    parse(LicenceFile, json_object())  # the shape; the signature is checked on the text as sent
    text = request.get_data(cache=True).decode("utf-8")
    try:
        state = licence.activate(context().directory, text)
    except licence.LicenceError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    note(f"activate licence for {state.serial} until {state.expires:%Y-%m-%d}")
    return reply(_state(state))
