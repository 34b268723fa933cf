"""Virtual services: the list, the editor, real servers, SubVSs and their rules."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flask import Response, abort, request

from passerelle.engine.manage.api import locate
from passerelle.engine.manage.api.changes import current
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.api.resources import real_servers, subvs, virtual_services
from passerelle.engine.manage.ui import facts, forms
from passerelle.engine.manage.ui.pages import done, render
from passerelle.engine.manage.ui.web import page
from passerelle.engine.manage.ui.writes import Outcome, call, change

Data = dict[str, Any]
VERBS = ("enable", "disable", "drain")


class Scoped:
    """Errors and typed values of the one form that was refused, by form scope."""

    def __init__(self, scope: str = "", outcome: Outcome | None = None, **kwargs: Any) -> None:
        self.scope = scope
        self.outcome = outcome
        self.errors: dict[str, str] = kwargs.get("errors", {})
        self.values: dict[str, Any] = kwargs.get("values", {})

    def errors_for(self, scope: str) -> dict[str, str]:
        return self.errors if scope == self.scope else {}

    def values_for(self, scope: str, default: dict[str, Any]) -> dict[str, Any]:
        return self.values if scope == self.scope and self.values else default


def _refused(scope: str, outcome: Outcome, fields: tuple[forms.Field, ...], prefix: str) -> Scoped:
    errors = forms.errors_by_field(outcome.problems, fields, prefix)
    if "" in errors and not errors[""]:
        errors[""] = outcome.message
    return Scoped(
        scope, outcome, errors=errors, values=forms.values_from_form(fields, request.form)
    )


def _service_index(name: str) -> int:
    _, config = current()
    for i, vs in enumerate(config.virtual_services):
        if vs.name == name:
            return i
    abort(404)


@page("/services")
def services(refused: Scoped | None = None, status: int = 200) -> Response:
    _, config = current()
    live = facts.statistics(context())
    rows = []
    for vs in config.virtual_services:
        figures = live.get(vs.name)
        rows.append(
            {
                "name": vs.name,
                "address": vs.address,
                "ports": ", ".join(str(p) for p in vs.ports),
                "mode": vs.mode if vs.protocol == "tcp" else "udp",
                "state": "enabled" if vs.enabled else "disabled",
                "tls": vs.tls is not None,
                "subvs": len(vs.subvs),
                "servers": len(vs.real_servers) + sum(len(s.real_servers) for s in vs.subvs),
                "health": figures.health.summary if figures else "no engine figures",
                "down": bool(figures and figures.health.down),
            }
        )
    refused = refused or Scoped()
    return render(
        "services.html",
        status,
        rows=rows,
        fields=forms.NEW_SERVICE,
        values=refused.values_for("new", {"mode": "http", "protocol": "tcp"}),
        errors=refused.errors_for("new"),
    )


@page("/services", methods=("POST",))
def create_service() -> Response:
    data = forms.apply_form(forms.NEW_SERVICE, request.form, {})
    index = len(current()[1].virtual_services)

    def add(config: Data) -> None:
        if any(vs["name"] == data.get("name") for vs in config["virtual_services"]):
            raise ApiError(409, f"a virtual service named {data.get('name')!r} exists", "name")
        config["virtual_services"].append(data)

    outcome = change(f"create virtual service {data.get('name')}", add)
    if not outcome.ok:
        prefix = f"virtual_services[{index}]."
        return services(_refused("new", outcome, forms.NEW_SERVICE, prefix), outcome.status)
    return done("ui.service", "virtual service created", name=data["name"])


def _health_of(live: facts.ServiceFigures | None, sub: str, key: str) -> str:
    if live is None:
        return "unknown"
    row = live.servers.get(f"{sub}/{key}")
    return str(row.get("health", "unknown")) if row else "unknown"


@page("/services/<name>")
def service(name: str, refused: Scoped | None = None, status: int = 200) -> Response:
    _, config = current()
    try:
        vs = config.service(name)
    except KeyError:
        abort(404)
    data = vs.model_dump(mode="json")
    live = facts.statistics(context()).get(name)
    refused = refused or Scoped()
    pools = [("", data)] + [(sub["name"], sub) for sub in data["subvs"]]
    health = {
        (sub, key): _health_of(live, sub, key)
        for sub, pool in pools
        for key in (locate.server_key(s["address"], s["port"]) for s in pool["real_servers"])
    }
    return render(
        "service.html",
        status,
        vs=data,
        refused=refused,
        service_fields=forms.SERVICE_FORM,
        service_values=refused.values_for(
            "service", forms.values_from_data(forms.SERVICE_FORM, data)
        ),
        subvs_fields=forms.SUBVS_FORM,
        subvs_values={
            sub["name"]: refused.values_for(
                f"subvs:{sub['name']}", forms.values_from_data(forms.SUBVS_FORM, sub)
            )
            for sub in data["subvs"]
        },
        server_fields=forms.REAL_SERVER,
        rule_fields=forms.RULE,
        health=health,
        server_key=locate.server_key,
        certificates=[c.name for c in config.certificates],
        verbs=VERBS,
        findings=_findings(config, name),
        open_subvs=request.args.get("open", ""),
    )


def _findings(config: Any, name: str) -> list[Any] | None:
    """Skype for Business requirements for a service that carries it; None otherwise."""
    try:
        advisor = importlib.import_module("passerelle.engine.manage.advisor")
    except ImportError:  # the advisor ships separately
        return None
    if not advisor.carries_skype(config.service(name)):
        return None
    return advisor.assess(config, name)


@page("/services/<name>", methods=("POST",))
def save_service(name: str) -> Response:
    index = _service_index(name)

    def replace(config: Data) -> None:
        vs = locate.service(config, name)
        forms.apply_form(forms.SERVICE_FORM, request.form, vs)

    outcome = change(f"edit virtual service {name}", replace)
    if not outcome.ok:
        scoped = _refused("service", outcome, forms.SERVICE_FORM, f"virtual_services[{index}].")
        return service(name, scoped, outcome.status)
    return done("ui.service", "saved", name=name)


def _after(name: str, outcome: Outcome, anchor: str, sub: str | None = None) -> Response:
    if outcome.ok:
        return done("ui.service", "saved", anchor, name=name, open=sub)
    errors = {"": outcome.message}
    return service(name, Scoped("page", outcome, errors=errors), outcome.status)


def _sub() -> str | None:
    return request.form.get("subvs") or None


@page("/services/<name>/enable", methods=("POST",))
def enable_service(name: str) -> Response:
    return _after(name, call(virtual_services.enable_service, name), "general")


@page("/services/<name>/disable", methods=("POST",))
def disable_service(name: str) -> Response:
    return _after(name, call(virtual_services.disable_service, name), "general")


@page("/services/<name>/delete", methods=("POST",))
def delete_service(name: str) -> Response:
    outcome = call(virtual_services.delete_service, name)
    if not outcome.ok:
        return _after(name, outcome, "general")
    return done("ui.services", f"virtual service {name} deleted")


@page("/services/<name>/servers", methods=("POST",))
def add_server(name: str) -> Response:
    sub = _sub()
    index = _service_index(name)
    server = forms.apply_form(forms.REAL_SERVER, request.form, {})
    where: list[int] = []

    def add(config: Data) -> None:
        pool = locate.pool(config, name, sub)
        taken = {(s["address"], s["port"]) for s in pool["real_servers"]}
        if (server.get("address"), server.get("port")) in taken:
            raise ApiError(409, "already a real server here", "address")
        where.append(len(pool["real_servers"]))
        pool["real_servers"].append(server)

    outcome = change(f"add real server to {_where(name, sub)}", add)
    anchor = f"servers-{sub or ''}"
    if outcome.ok:
        return done("ui.service", "real server added", anchor, name=name, open=sub)
    pool_path = f"virtual_services[{index}]." + (f"subvs[{_sub_index(name, sub)}]." if sub else "")
    prefix = f"{pool_path}real_servers[{where[-1] if where else 0}]."
    scoped = _refused(f"server:{sub or ''}", outcome, forms.REAL_SERVER, prefix)
    return service(name, scoped, outcome.status)


def _sub_index(name: str, sub: str) -> int:
    _, config = current()
    names = [s.name for s in config.service(name).subvs]
    return names.index(sub) if sub in names else 0


def _where(name: str, sub: str | None) -> str:
    return f"virtual service {name}" + (f" SubVS {sub}" if sub else "")


@page("/services/<name>/servers/<server>/<verb>", methods=("POST",))
def server_action(name: str, server: str, verb: str) -> Response:
    sub = _sub()
    if verb in VERBS:
        outcome = call(real_servers.set_state, name, sub, server, verb)
    elif verb == "remove":
        outcome = call(real_servers.delete_server, name, sub, server)
    else:
        abort(404)
    return _after(name, outcome, f"servers-{sub or ''}", sub)


SUBVS_NAME = (forms.Field("name", "Name"),)


@page("/services/<name>/subvs", methods=("POST",))
def add_subvs(name: str) -> Response:
    index = _service_index(name)
    new = {"name": request.form.get("name", "").strip()}
    where: list[int] = []

    def add(config: Data) -> None:
        vs = locate.service(config, name)
        if any(s["name"] == new["name"] for s in vs["subvs"]):
            raise ApiError(409, f"a SubVS named {new['name']!r} exists", "name")
        where.append(len(vs["subvs"]))
        vs["subvs"].append(new)

    outcome = change(f"add SubVS {new['name']} to virtual service {name}", add)
    if outcome.ok:
        return done(
            "ui.service", "SubVS added", f"subvs-{new['name']}", name=name, open=new["name"]
        )
    prefix = f"virtual_services[{index}].subvs[{where[-1] if where else 0}]."
    return service(name, _refused("new-subvs", outcome, SUBVS_NAME, prefix), outcome.status)


@page("/services/<name>/subvs/<sub>", methods=("POST",))
def save_subvs(name: str, sub: str) -> Response:
    index = _service_index(name)

    def replace(config: Data) -> None:
        pool = locate.pool(config, name, sub)
        forms.apply_form(forms.SUBVS_FORM, request.form, pool)

    outcome = change(f"edit SubVS {sub} of virtual service {name}", replace)
    if outcome.ok:
        return done("ui.service", "saved", f"subvs-{sub}", name=name, open=sub)
    prefix = f"virtual_services[{index}].subvs[{_sub_index(name, sub)}]."
    scoped = _refused(f"subvs:{sub}", outcome, forms.SUBVS_FORM, prefix)
    return service(name, scoped, outcome.status)


@page("/services/<name>/subvs/<sub>/delete", methods=("POST",))
def delete_subvs(name: str, sub: str) -> Response:
    return _after(name, call(subvs.delete_subvs, name, sub), "subvs")


def _rules(name: str, sub: str, action: str, mutate: Callable[[list[Data]], None]) -> Outcome:
    def edit_rules(config: Data) -> None:
        mutate(locate.pool(config, name, sub)["rules"])

    return change(f"{action} in SubVS {sub} of virtual service {name}", edit_rules)


@page("/services/<name>/subvs/<sub>/rules", methods=("POST",))
def add_rule(name: str, sub: str) -> Response:
    index = _service_index(name)
    rule = forms.apply_form(forms.RULE, request.form, {})
    position: list[int] = []

    def append(rules: list[Data]) -> None:
        position.append(len(rules))
        rules.append(rule)

    outcome = _rules(name, sub, "add a rule", append)
    if outcome.ok:
        return done("ui.service", "rule added", f"subvs-{sub}", name=name, open=sub)
    prefix = (
        f"virtual_services[{index}].subvs[{_sub_index(name, sub)}]."
        f"rules[{position[-1] if position else 0}]."
    )
    return service(name, _refused(f"rule:{sub}", outcome, forms.RULE, prefix), outcome.status)


@page("/services/<name>/subvs/<sub>/rules/<int:number>/delete", methods=("POST",))
def delete_rule(name: str, sub: str, number: int) -> Response:
    def remove(rules: list[Data]) -> None:
        if not 0 <= number < len(rules):
            raise ApiError(404, f"no rule {number + 1} in SubVS {sub!r}", "rules")
        del rules[number]

    outcome = _rules(name, sub, f"remove rule {number + 1}", remove)
    return _after(name, outcome, f"subvs-{sub}", sub)
