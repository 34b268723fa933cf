"""The engine daemon: store + supervisor + admin listener, until SIGTERM or Ctrl-C."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from passerelle.cli import CommandError  # noqa: E402
from passerelle.engine.manage.files import load_config_file  # noqa: E402
from passerelle.engine.manage.follow import StoreFollower  # noqa: E402
from passerelle.engine.manage.store import ConfigStore  # noqa: E402
from passerelle.engine.model.errors import ConfigError, validate_config  # noqa: E402
from passerelle.engine.runtime.admin import serve_admin  # noqa: E402
from passerelle.engine.runtime.supervisor import Supervisor  # noqa: E402

log = logging.getLogger("passerelle.engine")


def parse_endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"--admin: expected ADDRESS:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def run_engine(
    db: Path,
    config_file: Path | None,
    workers: int | None,
    admin: str | None,
    log_level: str = "INFO",
) -> int:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = ConfigStore(db)
    if config_file is not None:
        try:
            config = validate_config(load_config_file(config_file))
        except ConfigError as exc:
            raise CommandError(f"{config_file}: {exc}") from None
        version = store.apply(config, author="engine", comment=f"from {config_file}")
        log.info("%s stored as version %d", config_file, version.number)
    supervisor = Supervisor(workers=workers, log_level=log_level)
    stopped = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopped.set)
    supervisor.start()
    admin_server = None
    try:
        if admin:
            address, port = parse_endpoint(admin)
            admin_server = serve_admin(supervisor, address, port)
            log.info("admin listener on http://%s:%d/metrics", address, port)
        follower = StoreFollower(store, supervisor.apply)
        result = follower.sync()
        for error in (result or {}).get("errors", []):
            log.error("%s", error)
        gevent.spawn(follower.run)
        log.info("engine running with %d workers", supervisor.worker_count)
        stopped.wait()
        log.info("stopping")
    finally:
        if admin_server is not None:
            admin_server.stop()
        supervisor.stop()
        store.close()
    return 0
