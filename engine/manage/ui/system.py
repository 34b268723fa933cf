"""System: appliance facts and settings (hostname, network, time), users and API tokens,
backup/restore/history/rollback, audit log."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Response, g, request

from passerelle.engine.manage.api.bodies import iso, parse
from passerelle.engine.manage.api.changes import current, note
from passerelle.engine.manage.api.context import context
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.api.resources import config as config_api
from passerelle.engine.manage.api.resources import system as system_api
from passerelle.engine.manage.api.resources import tokens as tokens_api
from passerelle.engine.manage.api.resources import users as users_api
from passerelle.engine.manage.files import dump_config, load_config_file
from passerelle.engine.manage.ui import facts
from passerelle.engine.manage.ui.forms import (
    Field,
    apply_form,
    errors_by_field,
    values_from_form,
)
from passerelle.engine.manage.ui.login import change_own_password
from passerelle.engine.manage.ui.pages import done, render
from passerelle.engine.manage.ui.web import ha_state_file, page
from passerelle.engine.manage.ui.writes import Outcome, call, change
from passerelle.engine.manage.users import UserError
from passerelle.engine.model.errors import ConfigError

HISTORY = 30
AUDIT = 100
MAX_RESTORE = 16 * 1024 * 1024

# The appliance's settings forms, named as the system resource's bodies name their fields, so
# the ``field`` of its refusal finds the input.
HOSTNAME = (Field("hostname", "Host name", help="lb1 or lb1.example.com"),)
NETWORK = (
    Field("address", "Address", help="with its prefix length: 192.168.1.101/24"),
    Field("gateway", "Gateway", "optional", help="empty: none"),
    Field("dns", "DNS servers", "strs", help="up to 3, comma-separated"),
)
TIME = (
    Field("timezone", "Time zone", help="a tz database zone: Europe/Paris, UTC"),
    Field("ntp_servers", "NTP servers", "strs", help="comma-separated; none turns NTP off"),
)
SETTINGS_FORMS = {"hostname": HOSTNAME, "network": NETWORK, "time": TIME}


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _appliance_settings() -> dict[str, Any] | None:
    """The system resource's facts; None when this engine does not run the appliance."""
    try:
        return system_api.system_facts()
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _settings_values(settings: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    """What each settings form's inputs show."""
    if settings is None:
        return {}
    network, clock = settings["network"], settings["time"]
    return {
        "hostname": {"hostname": settings["hostname"]},
        "network": {
            "address": network["address"],
            "gateway": network["gateway"] or "",
            "dns": ", ".join(network["dns"]),
        },
        "time": {"timezone": clock["timezone"], "ntp_servers": ", ".join(clock["ntp_servers"])},
    }


@page("/system")
def system(
    form: str = "", errors: dict[str, str] | None = None, status: int = 200, **extra: Any
) -> Response:
    ctx = context()
    number, _ = current()
    appliance = _appliance_settings()
    values = _settings_values(appliance)
    if form in SETTINGS_FORMS and request.method == "POST":
        # a refused change shows what was typed, not what is in force
        values[form] = values_from_form(SETTINGS_FORMS[form], request.form)
    return render(
        "system.html",
        status,
        facts=facts.system_facts(ctx.directory),
        appliance=appliance,
        settings_forms=SETTINGS_FORMS,
        settings_values=values,
        ha=facts.ha_state(ha_state_file()),
        licence=facts.licence(ctx.directory),
        users=ctx.users.list_users(),
        tokens=ctx.users.list_tokens(),
        history=ctx.store.history(HISTORY),
        version=number,
        when=_when,
        form=form,
        errors=errors or {},
        **extra,
    )


def _put(fields: tuple[Field, ...], model: type[Any], apply: Callable[[Any], Any]) -> Outcome:
    """The system resource's own body check and operation, fed from this form."""

    def run() -> Any:
        return apply(parse(model, apply_form(fields, request.form, {})))

    return call(run)


def _settings_refused(form: str, outcome: Outcome) -> Response:
    errors = errors_by_field(outcome.problems, SETTINGS_FORMS[form])
    return system(form, errors, outcome.status)


@page("/system/hostname", methods=("POST",))
def change_hostname() -> Response:
    outcome = _put(HOSTNAME, system_api.HostnameIn, system_api.set_hostname)
    if not outcome.ok:
        return _settings_refused("hostname", outcome)
    return done("ui.system", "host name saved", "appliance")


@page("/system/network", methods=("POST",))
def change_network() -> Response:
    outcome = _put(NETWORK, system_api.NetworkIn, system_api.set_network)
    if not outcome.ok:
        return _settings_refused("network", outcome)
    if not outcome.result:
        return done("ui.system", "network settings saved", "appliance")
    address = request.form.get("address", "").strip()
    response = done(
        "ui.system",
        f"network settings saved: the engine restarts on {address}, continue there",
        "appliance",
    )
    return system_api.restart_when_sent(response)


@page("/system/time", methods=("POST",))
def change_time() -> Response:
    outcome = _put(TIME, system_api.TimeIn, system_api.set_time)
    if not outcome.ok:
        return _settings_refused("time", outcome)
    return done("ui.system", "time settings saved", "appliance")


@page("/system/users", methods=("POST",))
def create_user() -> Response:
    name = request.form.get("name", "").strip()
    try:
        context().users.create_user(name, request.form.get("password", ""))
    except UserError as exc:
        return system("user", {exc.field: str(exc)}, 422)
    note(f"create user {name}")
    return done("ui.system", f"user {name} created", "users")


@page("/system/users/<user>/delete", methods=("POST",))
def delete_user(user: str) -> Response:
    outcome = call(users_api.delete_user, user)
    if not outcome.ok:
        return system("users", {"": outcome.message}, outcome.status)
    return done("ui.system", f"user {user} deleted", "users")


@page("/system/password", methods=("POST",))
def change_password() -> Response:
    errors = change_own_password(
        request.form.get("current_password", ""),
        request.form.get("password", ""),
        request.form.get("confirm", ""),
    )
    if errors:
        return system("password", errors, 422)
    return done("ui.system", "password changed", "users")


@page("/system/tokens", methods=("POST",))
def create_token() -> Response:
    name = request.form.get("name", "").strip()[:64]
    if not name:
        return system("token", {"name": "give the token a name"}, 422)
    token, secret = context().users.create_token(g.user, name)
    note(f"create API token {token.id} ({token.name})")
    # The secret is shown on this answer only; it is stored as a hash.
    return system(new_token=secret, new_token_name=name)


@page("/system/tokens/<token>/revoke", methods=("POST",))
def revoke_token(token: str) -> Response:
    outcome = call(tokens_api.revoke_token, token)
    if not outcome.ok:
        return system("tokens", {"": outcome.message}, outcome.status)
    return done("ui.system", "token revoked", "tokens")


@page("/system/backup")
def backup() -> Response:
    number, config = current()
    response = Response(dump_config(config, "yaml"), mimetype="application/yaml")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="passerelle-config-v{number}-{stamp}.yaml"'
    )
    return response


@page("/system/restore", methods=("POST",))
def restore() -> Response:
    upload = request.files.get("backup")
    raw = upload.read(MAX_RESTORE) if upload is not None else b""
    if not raw:
        return system("restore", {"backup": "choose a configuration file"}, 422)
    suffix = Path(upload.filename or "").suffix.lower() if upload else ""
    # load_config_file gives the same messages (with line numbers) as `passerelle config apply`.
    with tempfile.NamedTemporaryFile(
        suffix=suffix if suffix in (".json", ".yaml", ".yml") else ""
    ) as f:
        f.write(raw)
        f.flush()
        try:
            data = load_config_file(f.name)
        except ConfigError as exc:
            return system("restore", {"backup": exc.message.replace(f.name, "file")}, 422)

    def replace(config: dict[str, Any]) -> None:
        config.clear()
        config.update(data)

    outcome = change("restore configuration (web UI upload)", replace)
    if not outcome.ok:
        where, message = outcome.problems[0]
        return system(
            "restore", {"backup": f"{where}: {message}" if where else message}, outcome.status
        )
    return done("ui.system", f"configuration restored as version {outcome.version}", "backup")


@page("/system/rollback/<int:number>", methods=("POST",))
def rollback(number: int) -> Response:
    outcome = call(config_api.rollback, str(number))
    if not outcome.ok:
        return system("history", {"": outcome.message}, outcome.status)
    return done("ui.system", f"rolled back to version {number}", "history")


@page("/system/diff")
def diff() -> Response:
    latest, _ = current()
    try:
        old = int(request.args.get("from", latest - 1 if latest > 1 else latest))
        new = int(request.args.get("to", latest))
    except ValueError:
        old, new = max(latest - 1, 0), latest
    answer = call_json(config_api.diff)
    text = answer.get("diff", "") if answer else ""
    return render("diff.html", old=old, new=new, text=text, error=answer.get("error", ""))


def call_json(view: Any) -> dict[str, Any]:
    """The JSON an API read view answers (its query comes from this request's arguments)."""
    try:
        return view().get_json()
    except ApiError as exc:
        return {"error": exc.message}


@page("/system/audit")
def audit() -> Response:
    entries = context().audit.entries(AUDIT, None)
    return render("audit.html", entries=entries, when=_when, iso=iso)
