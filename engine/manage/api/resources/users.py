"""/api/v1/users: management users and their passwords (every user is an administrator)."""

from __future__ import annotations

from flask import Response, g

from passerelle.engine.manage.api.bodies import body, empty, iso, reply
from passerelle.engine.manage.api.bootstrap import ADMIN, forget_initial_password
from passerelle.engine.manage.api.changes import note
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError, not_found
from passerelle.engine.manage.api.schemas import PasswordChange, UserCreate, UserInfo
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.manage.users import User, UserError

MANY = "/api/v1/users"
ONE = MANY + "/{user}"

resource = Resource("users", "users")


def _info(user: User) -> dict[str, str]:
    return UserInfo(
        name=user.name, created=iso(user.created), password_changed=iso(user.password_changed)
    ).model_dump(mode="json")


def _user(name: str) -> User:
    try:
        return context().users.get_user(name)
    except KeyError:
        raise not_found(f"user named {name!r}") from None


@resource.route("GET", MANY, "List users", response=UserInfo, many=True)
def list_users() -> Response:
    return reply([_info(u) for u in context().users.list_users()])


@resource.route(
    "POST",
    MANY,
    "Create a user",
    body=UserCreate,
    response=UserInfo,
    status=201,
    errors=(409, 422),
)
def create_user() -> Response:
    new = body(UserCreate)
    try:
        user = context().users.create_user(new.name, new.password)
    except UserError as exc:
        raise ApiError(409 if "exists" in str(exc) else 422, str(exc), exc.field) from None
    note(f"create user {user.name}")
    response = reply(_info(user), 201)
    response.headers["Location"] = f"{MANY}/{user.name}"
    return response


@resource.route("GET", ONE, "Read a user", response=UserInfo, errors=(404,))
def get_user(user: str) -> Response:
    return reply(_info(_user(user)))


@resource.route(
    "DELETE",
    ONE,
    "Delete a user (not oneself, not the last one)",
    status=204,
    errors=(404, 409),
)
def delete_user(user: str) -> Response:
    _user(user)
    if user == g.user:
        raise ApiError(409, "you cannot delete the user you are logged in as", "user")
    users = context().users
    if users.count() <= 1:
        raise ApiError(409, "the last user cannot be deleted", "user")
    try:
        users.delete_user(user)
    except KeyError:  # deleted by someone else meanwhile
        raise not_found(f"user named {user!r}") from None
    note(f"delete user {user}")
    return empty()


@resource.route(
    "PUT",
    ONE + "/password",
    "Set a user's password (one's own needs the current one)",
    body=PasswordChange,
    status=204,
    errors=(403, 404, 422),
)
def change_password(user: str) -> Response:
    change = body(PasswordChange)
    _user(user)
    users = context().users
    if user == g.user and (
        change.current_password is None
        or users.verify_password(user, change.current_password) is None
    ):
        raise ApiError(403, "the current password is missing or wrong", "current_password")
    try:
        users.set_password(user, change.password)
    except UserError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    except KeyError:  # deleted by someone else meanwhile
        raise not_found(f"user named {user!r}") from None
    # Whoever knew the old password must not stay logged in with it.
    users.end_sessions(user, keep=g.get("session_id") if user == g.user else None)
    if user == ADMIN:
        forget_initial_password(context().directory)
    note(f"change password of {user}")
    return empty()
