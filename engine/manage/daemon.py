"""The engine daemon: store + supervisor + admin and management listeners, until SIGTERM."""

from __future__ import annotations

from passerelle.engine.runtime.lean import skip_plugin_discovery

skip_plugin_discovery()

from gevent import monkey  # noqa: E402

monkey.patch_all()

import logging  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from passerelle.cli import CommandError  # noqa: E402
from passerelle.engine import compiled  # noqa: E402
from passerelle.engine.ha.state import DEFAULT_STATE_FILE  # noqa: E402
from passerelle.engine.runtime.supervisor import Supervisor  # noqa: E402

# Only what starts the supervisor is imported above: its workers are forked from it, and every
# module or object in its memory at that moment is resident again in each worker. The store,
# the HA node, the licence and the control socket are imported once the workers run.

if TYPE_CHECKING:
    from passerelle.engine.ha.node import HANode
    from passerelle.engine.manage.api.plane import ManagementPlane
    from passerelle.engine.manage.control_server import ControlServer
    from passerelle.engine.manage.follow import StoreFollower
    from passerelle.engine.manage.store import ConfigStore

log = logging.getLogger("passerelle.engine")


def parse_endpoint(text: str, option: str = "--admin") -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise CommandError(f"{option}: expected ADDRESS:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def start_management(
    store: ConfigStore,
    supervisor: Supervisor,
    endpoint: str,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    password_file: Path | None = None,
) -> tuple[ManagementPlane, str | None]:
    """The HTTPS management API beside the engine; also the generated admin password, if any."""
    # Imported here: an engine run without the management plane (--management off) does not
    # carry the web framework and its templates in memory.
    from passerelle.engine.manage.api.listener import clash
    from passerelle.engine.manage.api.plane import ManagementPlane
    from passerelle.engine.manage.users import UserError
    from passerelle.engine.runtime.admin import AdminApp
    from passerelle.engine.stats.report import prometheus

    address, port = parse_endpoint(endpoint, "--management")
    used_by = clash(address, port, store.current()[1])
    if used_by is not None:
        raise CommandError(
            f"--management: {address}:{port} is a listener of virtual service {used_by!r}; "
            "the management API never shares an address with a virtual service"
        )
    admin = AdminApp(supervisor)
    try:
        plane = ManagementPlane(
            store,
            address,
            port,
            stats=admin.stats,
            status=admin.status,
            metrics=lambda: prometheus(admin.stats(), supervisor.version),
            cert=cert,
            key=key,
        )
        password = plane.ensure_admin(password_file)
    except UserError as exc:
        raise CommandError(f"admin password: {exc}") from None
    except (OSError, ValueError) as exc:
        raise CommandError(f"management listener: {exc}") from None
    plane.start()
    return plane, password


def _health_url(admin: str | None, management: str) -> str:
    """What keepalived's track script asks: the admin listener, else the management API."""
    if admin:
        address, port = parse_endpoint(admin)
        scheme, path = "http", "/healthz"
    else:
        address, port = parse_endpoint(management, "--management")
        scheme, path = "https", "/api/v1/health"
    if address in ("0.0.0.0", "::", ""):
        address = "127.0.0.1" if address != "::" else "::1"
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}{path}"


def start_ha(
    store: ConfigStore,
    supervisor: Supervisor,
    plane: ManagementPlane,
    health_url: str,
    state_file: Path,
    run_dir: Path,
    keepalived: str,
) -> HANode:
    """The HA side of the engine: it follows every applied configuration's ``ha`` section."""
    from passerelle.engine.ha.node import EXTENSION as HA_EXTENSION
    from passerelle.engine.ha.node import HANode

    node = HANode(
        store,
        supervisor,
        state_file=state_file,
        run_dir=run_dir,
        api_port=plane.listener.port,
        certificate=plane.certificate,
        check_url=health_url,
        keepalived=keepalived,
    )
    supervisor.on_applied.append(node.config_applied)
    plane.add_extension(HA_EXTENSION, node)
    node.start()
    return node


def start_control(store: ConfigStore, follower: StoreFollower) -> ControlServer | None:
    """The control socket beside the store, through which `passerelle config apply` hands its
    file to this engine; None when it cannot be made (the command then stores files itself)."""
    from passerelle.engine.manage.applying import apply_action
    from passerelle.engine.manage.control_server import ControlServer
    from passerelle.engine.manage.location import control_path
    from passerelle.engine.manage.store import StoreError

    def make_live(_: int) -> None:
        try:
            follower.sync()
        except StoreError as exc:  # stored all the same: the follow loop tries again
            log.error("configuration store: %s", exc)

    server = ControlServer(control_path(store.path), {"apply": apply_action(store, make_live)})
    try:
        server.start()
    except OSError as exc:
        log.warning(
            "no control socket at %s (%s): 'passerelle config apply' stores changes itself",
            server.path,
            exc.strerror or exc,
        )
        return None
    log.info("control socket at %s", server.path)
    return server


def run_engine(
    db: Path,
    config_file: Path | None,
    workers: int | None,
    admin: str | None,
    log_level: str = "INFO",
    management: str | None = None,
    management_cert: Path | None = None,
    management_key: Path | None = None,
    admin_password_file: Path | None = None,
    ha_state_file: Path = DEFAULT_STATE_FILE,
    ha_run_dir: Path = Path("/run/passerelle/ha"),
    keepalived: str = "keepalived",
) -> int:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Workers first (see the imports): they get the configuration once it is stored.
    supervisor = Supervisor(workers=workers, log_level=log_level)
    stopped = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopped.set)
    supervisor.start()
    store = None
    admin_server = None
    plane = None
    ha = None
    control = None
    try:
        from passerelle.engine.manage.follow import StoreFollower
        from passerelle.engine.manage.licence.enforce import LicenceEnforcer
        from passerelle.engine.manage.store import ConfigStore

        store = ConfigStore(db)
        if config_file is not None:
            store_config_file(store, config_file)
        if management:
            plane, password = start_management(
                store,
                supervisor,
                management,
                cert=management_cert,
                key=management_key,
                password_file=admin_password_file,
            )
            if password is not None:
                from passerelle.engine.manage.api.bootstrap import INITIAL_PASSWORD_FILE

                log.warning(
                    "created user 'admin' with password %s (also written to %s)",
                    password,
                    db.parent / INITIAL_PASSWORD_FILE,
                )
            ha = start_ha(
                store,
                supervisor,
                plane,
                _health_url(admin, management),
                ha_state_file,
                ha_run_dir,
                keepalived,
            )
        if admin:
            from passerelle.engine.runtime.admin import serve_admin

            address, port = parse_endpoint(admin)
            admin_server = serve_admin(supervisor, address, port)
            log.info("admin listener on http://%s:%d/metrics", address, port)
        # Before the first configuration: an expired licence never opens a listener.
        licence = LicenceEnforcer(db.parent, supervisor.set_accepting)
        licence.check()
        gevent.spawn(licence.run)
        follower = StoreFollower(store, supervisor.apply)
        result = follower.sync()
        for error in (result or {}).get("errors", []):
            log.error("%s", error)
        gevent.spawn(follower.run)
        control = start_control(store, follower)
        log.info(
            "engine running with %d workers, request path %s",
            supervisor.worker_count,
            compiled.describe(),
        )
        stopped.wait()
        log.info("stopping")
    finally:
        if control is not None:
            control.stop()
        if ha is not None:
            ha.stop()
        if plane is not None:
            plane.stop()
        if admin_server is not None:
            admin_server.stop()
        supervisor.stop()
        if store is not None:
            store.close()
    return 0


def store_config_file(store: ConfigStore, config_file: Path) -> None:
    """The engine's ``--config``: validated whole and stored as a new version."""
    from passerelle.engine.manage.files import load_config_file
    from passerelle.engine.model.errors import ConfigError, validate_config
    from passerelle.engine.model.ha import keep_local_ha

    try:
        config = validate_config(load_config_file(config_file))
    except ConfigError as exc:
        raise CommandError(f"{config_file}: {exc}") from None
    config = keep_local_ha(config, store.current()[1])
    version = store.apply(config, author="engine", comment=f"from {config_file}")
    log.info("%s stored as version %d", config_file, version.number)
