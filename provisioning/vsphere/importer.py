"""Importing an OVA: import spec from its descriptor, ImportVApp, disk upload over an NFC lease.

The lease must hear about progress regularly or vSphere cancels the import; on any failure
the lease is aborted, which makes vSphere remove the half-created VM.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from pyVmomi import vim, vmodl

from passerelle.provisioning.errors import DeployError
from passerelle.provisioning.ova import OVF_NS, OvaPackage
from passerelle.provisioning.progress import Reporter
from passerelle.provisioning.vsphere.properties import properties

CHUNK = 1 << 20
LEASE_PROGRESS_EVERY = 5.0  # seconds; vSphere drops an idle lease after a few minutes
LEASE_READY_TIMEOUT = 300.0


@dataclass(frozen=True)
class ImportRequest:
    name: str
    pool: Any
    folder: Any
    host: Any
    datastore: Any
    network: Any
    extra_config: dict[str, str]  # written into the VM at creation (our marker)


def ovf_network_names(descriptor: str) -> list[str]:
    root = ET.fromstring(descriptor)
    return [
        n.get(f"{{{OVF_NS}}}name", "")
        for n in root.iter(f"{{{OVF_NS}}}Network")
        if n.get(f"{{{OVF_NS}}}name")
    ]


def create_import_spec(
    service: vim.ServiceInstance, ova: OvaPackage, request: ImportRequest, reporter: Reporter
) -> Any:
    params = vim.OvfManager.CreateImportSpecParams(
        entityName=request.name,
        diskProvisioning="thin",
        networkMapping=[
            vim.OvfManager.NetworkMapping(name=name, network=request.network)
            for name in ovf_network_names(ova.descriptor)
        ],
    )
    try:
        result = service.content.ovfManager.CreateImportSpec(
            ovfDescriptor=ova.descriptor,
            resourcePool=request.pool,
            datastore=request.datastore,
            cisp=params,
        )
    except vmodl.MethodFault as exc:
        raise DeployError(f"--ova {ova.path}: vSphere refused the descriptor: {exc.msg}") from exc
    if result.error:
        messages = "; ".join(e.localizedMessage or type(e.fault).__name__ for e in result.error)
        raise DeployError(f"--ova {ova.path}: vSphere cannot import this OVF: {messages}")
    for warning in result.warning or []:
        reporter.warn(f"OVF import: {warning.localizedMessage}")
    spec = result.importSpec
    spec.configSpec.extraConfig = list(spec.configSpec.extraConfig or []) + [
        vim.option.OptionValue(key=key, value=value) for key, value in request.extra_config.items()
    ]
    return spec, list(result.fileItem or [])


def _wait_ready(service: vim.ServiceInstance, lease: Any) -> Any:
    deadline = time.monotonic() + LEASE_READY_TIMEOUT
    while True:
        props = properties(service, lease, ["state", "error", "info"])
        state = props.get("state")
        if state == vim.HttpNfcLease.State.ready:
            return props["info"]
        if state == vim.HttpNfcLease.State.error:
            error = props.get("error")
            raise DeployError(f"import failed: {getattr(error, 'localizedMessage', error)}")
        if time.monotonic() > deadline:
            raise DeployError("import: vSphere did not get the upload ready in time")
        time.sleep(0.5)


def _https_connection(
    url: str, insecure: bool, thumbprint: str | None
) -> http.client.HTTPSConnection:
    parsed = urlsplit(url)
    context = ssl.create_default_context()
    if insecure or thumbprint:
        # A host's thumbprint from the lease pins its certificate; checked after connect.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection(
        parsed.hostname or "", parsed.port or 443, context=context, timeout=120
    )
    if thumbprint and not insecure:
        connection.connect()
        assert connection.sock is not None
        der = connection.sock.getpeercert(binary_form=True) or b""  # type: ignore[attr-defined]
        seen = hashlib.sha1(der).hexdigest()
        if seen != thumbprint.replace(":", "").lower():
            connection.close()
            raise DeployError(
                f"upload to {parsed.hostname}: certificate does not match the thumbprint "
                "vSphere gave for that host; check for interception or pass --insecure"
            )
    return connection


def _upload(
    url: str,
    method: str,
    stream: IO[bytes],
    size: int,
    insecure: bool,
    thumbprint: str | None,
    advance: Callable[[int], None],
) -> None:
    connection = _https_connection(url, insecure, thumbprint)
    parsed = urlsplit(url)
    try:
        connection.putrequest(method, parsed.path + (f"?{parsed.query}" if parsed.query else ""))
        connection.putheader("Content-Type", "application/x-vnd.vmware-streamVmdk")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        while chunk := stream.read(CHUNK):
            connection.send(chunk)
            advance(len(chunk))
        response = connection.getresponse()
        response.read()
        if response.status not in (200, 201):
            raise DeployError(f"upload to {parsed.hostname} failed: HTTP {response.status}")
    finally:
        connection.close()


def import_ova(
    service: vim.ServiceInstance,
    server_authority: str,
    ova: OvaPackage,
    request: ImportRequest,
    insecure: bool,
    reporter: Reporter,
) -> Any:
    """Creates the VM from the OVA and uploads its disks; returns the VM."""
    spec, file_items = create_import_spec(service, ova, request, reporter)
    try:
        lease = request.pool.ImportVApp(spec=spec, folder=request.folder, host=request.host)
    except vim.fault.DuplicateName as exc:
        raise DeployError(
            f"a VM named {request.name!r} appeared while deploying; run the command again"
        ) from exc
    except vmodl.MethodFault as exc:
        raise DeployError(f"{request.name}: vSphere refused the import: {exc.msg}") from exc
    try:
        info = _wait_ready(service, lease)
        items = {item.deviceId: item for item in file_items}
        uploads = []
        for device in info.deviceUrl or []:
            item = items.get(device.importKey)
            if item is None:
                continue
            url = device.url.replace("*", server_authority, 1)
            method = "PUT" if item.create else "POST"
            uploads.append((url, method, item.path, device.sslThumbprint or None))
        total = sum(ova.files[path].size for _, _, path, _ in uploads) or 1
        sent = 0
        last_report = time.monotonic()

        with reporter.transfer(f"{request.name}: uploading disk", total) as advance:

            def progress(n: int) -> None:
                nonlocal sent, last_report
                sent += n
                advance(n)
                if time.monotonic() - last_report >= LEASE_PROGRESS_EVERY:
                    lease.HttpNfcLeaseProgress(percent=min(99, sent * 100 // total))
                    last_report = time.monotonic()

            for url, method, path, thumbprint in uploads:
                with ova.open(path) as stream:
                    _upload(
                        url, method, stream, ova.files[path].size, insecure, thumbprint, progress
                    )
        lease.HttpNfcLeaseProgress(percent=100)
        lease.HttpNfcLeaseComplete()
    except BaseException as exc:
        fault = vmodl.fault.SystemError(reason=str(exc) or type(exc).__name__)
        with contextlib.suppress(Exception):
            lease.HttpNfcLeaseAbort(fault=fault)
        if isinstance(exc, OSError | ssl.SSLError | http.client.HTTPException):
            raise DeployError(f"{request.name}: disk upload failed: {exc}") from exc
        raise
    return info.entity
