"""The template data file: what it declares (parameters) and how it is read safely.

A template is YAML data, never code: a header (name, version, title, description), its
parameters, and a ``body`` shaped like a configuration (``virtual_services``, optionally
``certificates``) in which ``${parameter}`` placeholders and a few directives (render.py) stand
for the parameters' values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from passerelle.engine.manage.files import _Loader as _ConfigLoader
from passerelle.engine.model.errors import ConfigError, from_validation_error

MAX_TEMPLATE_BYTES = 256 * 1024
Kind = Literal[
    "text",
    "address",
    "port",
    "hostname",
    "hostnames",
    "addresses",
    "certificate",
    "integer",
    "boolean",
]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
TemplateName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.\-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterSpec(_Strict):
    name: Identifier
    title: Annotated[str, Field(min_length=1, max_length=200)]
    kind: Kind
    default: Any = None
    required: bool = False
    help: str = ""
    choices: list[str] = Field(default_factory=list)  # text: the allowed values
    minimum: int | None = None  # integer
    maximum: int | None = None
    pattern: str | None = None  # text: a regular expression the whole value must match

    @model_validator(mode="after")
    def _consistent(self) -> ParameterSpec:
        if self.choices and self.kind != "text":
            raise ValueError("choices are for kind 'text'")
        if (self.minimum is not None or self.maximum is not None) and self.kind != "integer":
            raise ValueError("minimum and maximum are for kind 'integer'")
        if self.required and self.default is not None:
            raise ValueError("a required parameter has no default")
        return self


class Body(_Strict):
    certificates: list[Any] = Field(default_factory=list)
    virtual_services: list[Any] = Field(min_length=1)


class TemplateSpec(_Strict):
    name: TemplateName
    version: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.\-+]{0,31}$")]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    parameters: list[ParameterSpec] = Field(default_factory=list)
    body: Body

    @model_validator(mode="after")
    def _unique(self) -> TemplateSpec:
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError("parameter names must be unique")
        return self

    def parameter(self, name: str) -> ParameterSpec | None:
        for spec in self.parameters:
            if spec.name == name:
                return spec
        return None


def _refuse_aliases(text: str) -> None:
    # A small file whose aliases expand into a huge tree (billion laughs) must be refused
    # before anything walks it; the parser's events show aliases without building anything.
    for event in yaml.parse(text, Loader=_ConfigLoader):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in templates", event.start_mark
            )


def parse_template(text: str) -> TemplateSpec:
    """Read and check a template data file; ConfigError naming the field if it is not one."""
    if len(text.encode("utf-8")) > MAX_TEMPLATE_BYTES:
        raise ConfigError("", f"a template must not exceed {MAX_TEMPLATE_BYTES // 1024} KiB")
    try:
        _refuse_aliases(text)
        data = yaml.load(text, Loader=_ConfigLoader)  # a safe loader: no object tags
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError("", f"not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError("", "a template is a mapping with name, version, title and body")
    try:
        return TemplateSpec.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
