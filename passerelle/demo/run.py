"""Runs the demo: sample servers, then the engine with the reference deployment."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from passerelle.demo.sfb import (  # noqa: E402
    EXTERNAL_WEB_NAMES,
    OOS_NAME,
    Certificates,
    Layout,
    SampleDeployment,
    reference_config,
)
from passerelle.engine.manage.advisor import PORT_OFFSET_ENV  # noqa: E402
from passerelle.engine.manage.api.bootstrap import INITIAL_PASSWORD_FILE  # noqa: E402
from passerelle.engine.manage.daemon import parse_endpoint, start_management  # noqa: E402
from passerelle.engine.manage.follow import StoreFollower  # noqa: E402
from passerelle.engine.manage.store import ConfigStore  # noqa: E402
from passerelle.engine.model.errors import validate_config  # noqa: E402
from passerelle.engine.runtime.admin import serve_admin  # noqa: E402
from passerelle.engine.runtime.supervisor import Supervisor  # noqa: E402


def _free_or_any(endpoint: str) -> str:
    """``endpoint`` if nothing listens there, else the same address on a port of the kernel's
    choosing: a second demo on one machine must still start."""
    address, port = parse_endpoint(endpoint, "--management")
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            probe.bind((address, 0))
        port = probe.getsockname()[1]
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def run_demo(
    directory: Path | None, workers: int | None, admin: str, management: str = "127.0.0.1:8443"
) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    directory = directory or Path(tempfile.mkdtemp(prefix="passerelle-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    layout = Layout()
    certs = Certificates.create(layout)
    ca_path = certs.write(directory)
    samples = SampleDeployment(layout, certs).start()
    store = ConfigStore(directory / "passerelle.db")
    store.apply(
        validate_config(reference_config(layout, certs)),
        author="demo",
        comment="Skype for Business reference deployment",
    )
    supervisor = Supervisor(workers=workers)
    stopped = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopped.set)
    supervisor.start()
    address, port = parse_endpoint(admin)
    admin_server = serve_admin(supervisor, address, port)
    # The demo shifts Skype's ports by 10000 so nothing needs root; the compliance advisor
    # must judge 15061 as the 5061 health port it stands for.
    os.environ.setdefault(PORT_OFFSET_ENV, "10000")
    plane, password = start_management(store, supervisor, _free_or_any(management))
    try:
        follower = StoreFollower(store, supervisor.apply)
        follower.sync()
        gevent.spawn(follower.run)
        print(banner(layout, ca_path, directory, admin), flush=True)
        print(management_banner(plane.url, plane.certificate, password, directory), flush=True)
        stopped.wait()
    finally:
        plane.stop()
        admin_server.stop()
        supervisor.stop()
        samples.stop()
        store.close()
    return 0


def banner(layout: Layout, ca_path: Path, directory: Path, admin: str) -> str:
    rp, https = layout.rp_vip, layout.https
    resolve = " ".join(
        f"--resolve {name}:{https}:{rp}" for name in [*EXTERNAL_WEB_NAMES[:1], OOS_NAME]
    )
    return f"""
Passerelle demo: the Skype for Business reference deployment is live on loopback.

  Reverse proxy VIP   https://{rp}:{https}  (TLS offload, Host switching, re-encryption)
                      http://{rp}:{layout.http}   (to the front ends' {layout.http_external})
  Internal HLB VIP    {layout.hlb_vip}:{layout.https} / :{layout.http} / :{layout.https_external}
                      (L4, source-IP persistence, health on TCP {layout.sip_tls}, idle 1800 s)
  Front ends          {", ".join(layout.front_ends)}
  Office Online       {", ".join(layout.office_online)}
  Metrics and stats   http://{admin}/metrics   http://{admin}/stats

Try it:
  curl --cacert {ca_path} {resolve} https://{EXTERNAL_WEB_NAMES[0]}:{https}/
  curl --cacert {ca_path} {resolve} https://{OOS_NAME}:{https}/
  curl -k https://{layout.hlb_vip}:{layout.https}/

Configuration store: {directory / "passerelle.db"}
  passerelle config export --db {directory / "passerelle.db"}

"""


def management_banner(url: str, certificate: Path, password: str | None, directory: Path) -> str:
    shown = password or f"(as set before; first one in {directory / INITIAL_PASSWORD_FILE})"
    return f"""Management API      {url}/api/v1/   (OpenAPI: {url}/api/v1/openapi.json)
  user admin, password {shown}
  curl --cacert {certificate} -u admin:PASSWORD {url}/api/v1/virtual-services

Press Ctrl-C to stop.
"""
