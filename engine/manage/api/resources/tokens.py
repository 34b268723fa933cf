"""/api/v1/tokens: API tokens for scripts (``Authorization: Bearer <token>``)."""

from __future__ import annotations

from flask import Response, g

from passerelle.engine.manage.api.bodies import body, empty, iso, reply
from passerelle.engine.manage.api.changes import note
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError, not_found
from passerelle.engine.manage.api.schemas import TokenCreate, TokenCreated, TokenInfo
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.manage.users import ApiToken

MANY = "/api/v1/tokens"

resource = Resource("tokens", "API tokens")


def _info(token: ApiToken) -> dict[str, str | None]:
    return TokenInfo(
        id=token.id,
        user=token.user,
        name=token.name,
        created=iso(token.created),
        last_used=iso(token.last_used) if token.last_used else None,
    ).model_dump(mode="json")


@resource.route("GET", MANY, "List API tokens (never their secrets)", response=TokenInfo, many=True)
def list_tokens() -> Response:
    return reply([_info(t) for t in context().users.list_tokens()])


@resource.route(
    "POST",
    MANY,
    "Create an API token for the calling user; the secret is shown only here",
    body=TokenCreate,
    response=TokenCreated,
    status=201,
    errors=(422,),
)
def create_token() -> Response:
    request = body(TokenCreate)
    try:
        token, secret = context().users.create_token(g.user, request.name)
    except KeyError:  # the calling user was deleted while this request ran
        raise ApiError(401, "the user no longer exists", "Authorization") from None
    note(f"create API token {token.id} ({token.name})")
    response = reply({**_info(token), "token": secret}, 201)
    response.headers["Cache-Control"] = "no-store"
    return response


@resource.route("DELETE", MANY + "/{token}", "Revoke an API token", status=204, errors=(404,))
def revoke_token(token: str) -> Response:
    try:
        context().users.revoke_token(token)
    except KeyError:
        raise not_found(f"API token {token!r}") from None
    note(f"revoke API token {token}")
    return empty()
