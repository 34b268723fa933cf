"""Routes that describe themselves: each one registers its Flask view and its OpenAPI operation.

The request and response models named here are the ones the view uses, so the OpenAPI document
cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint
from pydantic import BaseModel

View = TypeVar("View", bound=Callable[..., Any])

JSON = "application/json"


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    type: str = "string"  # an OpenAPI scalar type
    enum: tuple[str, ...] = ()
    minimum: int | None = None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form: /api/v1/virtual-services/{name}
    summary: str
    tag: str
    view: str  # the Flask endpoint
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    many: bool = False  # the response is a list of ``response``
    status: int = 200
    errors: tuple[int, ...] = ()
    public: bool = False
    query: tuple[Query, ...] = ()
    media: str = JSON  # of the success response
    alternatives: tuple[str, ...] = ()  # other media types of the same document (?format=)
    etag: bool = False  # answers with an ETag and honours If-Match
    # "validation" for an answer that is meant to be sent back as is (a configuration export)
    response_mode: str = "serialization"


@dataclass
class Resource:
    """One resource's routes: a Flask blueprint plus the operations it documents."""

    name: str
    tag: str
    blueprint: Blueprint = field(init=False)
    operations: list[Operation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.blueprint = Blueprint(self.name, __name__)

    def route(
        self,
        method: str,
        path: str,
        summary: str,
        **options: Any,
    ) -> Callable[[View], View]:
        def register(view: View) -> View:
            endpoint = view.__name__
            flask_path = re.sub(r"\{(\w+)\}", r"<\1>", path)
            self.blueprint.add_url_rule(flask_path, endpoint, view, methods=[method])
            operation = Operation(
                method.lower(), path, summary, self.tag, f"{self.name}.{endpoint}", **options
            )
            self.operations.append(operation)
            if operation.public:
                view.public = True  # type: ignore[attr-defined]
            return view

        return register
